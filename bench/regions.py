"""Regions benchmark: a database-less agent's probes per CPU-second against the bare gevent + requests loop in the
same run, and how many other regions' results one home worker records per CPU-second (the broker path).

    .venv/bin/python bench/regions.py [--concurrency 100] [--delay-ms 50] [--seconds 10] [--warmup 3]
                                      [--results 20000] [--batch 10]

All on 127.0.0.1, on a fresh database and RabbitMQ vhost:
- agent: `lookout agent --region bench` (only the broker, its region and key), its `probes.bench` queue filled
  beforehand with RUN messages as beat sends them (same builder, lookout.scheduling.regional), against the target of
  bench/probes.py (answers 200 after --delay-ms). Probes are counted as results arriving home on `results` (read
  by this process, not recorded); CPU is the agent process's own.
- baseline: bench/probes.py's bare loop, N greenlets of requests.get(target).
- recording: the `results` queue filled with --results results in messages of --batch (an agent sends ~5-10 per
  message under load), then one `lookout worker --queues results` records them; rows per second and per CPU-second
  of that worker (PostgreSQL's and RabbitMQ's CPU shown beside it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [BENCH, os.path.join(os.path.dirname(BENCH), "tests")]

import _common as common  # noqa: E402

import probes as probes_bench  # noqa: E402
from support import stack  # noqa: E402

REGION = "bench"


def runs_fill(broker_url: str, ids: list[int], count: int) -> None:
    """`count` runs of the monitors, round-robin, on probes.bench, as beat builds them."""
    from kombu import Connection

    from lookout.config.celery_app import app
    from lookout.scheduling.regional import AGENT_TASK, Regional

    now = time.time()
    with Connection(broker_url) as connection:
        producer = app.amqp.Producer(connection.channel())
        for n in range(count):
            monitor_id = ids[n % len(ids)]
            regional = Regional(monitor_id=monitor_id, regions=("home", REGION), spec=SPEC, sealed={})
            due = now + n * 1e-3
            task_id, run = regional.run(region=REGION, schedule_id=monitor_id, due=due, expires=due + 600)
            app.send_task(AGENT_TASK, kwargs={"run": run}, task_id=task_id, queue=f"probes.{REGION}",
                          producer=producer, expires=600)


class ResultCounter:
    """Counts results arriving on `results` (acknowledged, not recorded): the agent's probes, as home sees them."""

    def __init__(self, broker_url: str) -> None:
        from kombu import Connection, Exchange, Queue

        self.count = 0
        self._stop = threading.Event()
        self._queue = Queue("results", Exchange("results", "direct"), routing_key="results")
        self._connection = Connection(broker_url)
        self._thread = threading.Thread(target=self._consume, daemon=True)
        self._thread.start()

    def _consume(self) -> None:
        def on_message(body, message) -> None:
            if message.headers.get("task") == "lookout.probes.remote.results_record":
                self.count += len(body[1]["results"])
            message.ack()

        with self._connection.Consumer([self._queue], callbacks=[on_message], accept=["json"]):
            while not self._stop.is_set():
                try:
                    self._connection.drain_events(timeout=0.2)
                except TimeoutError:
                    pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._connection.release()


def run_agent(env: dict, workdir: str, concurrency: int, counter: ResultCounter, *, warmup: float,
              seconds: float) -> dict:
    metrics_port = stack.free_port()
    agent_env = stack.base_environment(CELERY_BROKER_URL=env["CELERY_BROKER_URL"], LOOKOUT_REGION=REGION,
                                       LOOKOUT_REGION_KEY=env["REGION_KEY"], LOOKOUT_ALLOW_PRIVATE_TARGETS="1",
                                       LOOKOUT_WORKER_CONCURRENCY=str(concurrency),
                                       LOOKOUT_METRICS_PORT=str(metrics_port), LOOKOUT_LOG_LEVEL="WARNING")
    log = Path(workdir, "agent.log")
    agent = stack.process_start([*stack.LOOKOUT, "agent", "--region", REGION], env=agent_env, log=log, cwd=workdir)
    try:
        stack.wait_until(lambda: counter.count > 0 or agent.poll() is not None, timeout=60, what="the agent's first")
        if agent.poll() is not None:
            raise SystemExit(f"the agent exited:\n{stack.log_tail(log)}")
        time.sleep(warmup)
        wall0, cpu0, count0 = time.perf_counter(), common.proc_cpu_seconds(agent.pid), counter.count
        time.sleep(seconds)
        wall1, cpu1, count1 = time.perf_counter(), common.proc_cpu_seconds(agent.pid), counter.count
        rss = common.proc_peak_rss_mib(agent.pid)
    finally:
        stack.processes_stop([agent], timeout=20)
    return {"probes": count1 - count0, "wall": wall1 - wall0, "cpu": cpu1 - cpu0, "rss": rss}


def results_fill(broker_url: str, ids: list[int], count: int, batch: int) -> None:
    from kombu import Connection

    from lookout.config.celery_app import app
    from lookout.core.regions import run_token

    start = datetime.now(UTC) - timedelta(minutes=30)
    with Connection(broker_url) as connection:
        producer = app.amqp.Producer(connection.channel())
        for first in range(0, count, batch):
            results = []
            for n in range(first, min(first + batch, count)):
                monitor_id = ids[n % len(ids)]
                due = (start + timedelta(milliseconds=n)).timestamp()
                task_id = f"bench-{n}"
                results.append({
                    "monitor": monitor_id, "region": REGION, "due": due, "task_id": task_id,
                    "token": run_token(monitor_id=monitor_id, region=REGION, task_id=task_id, due=due),
                    "recheck": False, "worker": "bench-agent", "success": True, "status_code": 200,
                    "checked_at": datetime.fromtimestamp(due + 0.01, UTC).isoformat(), "response_time_ms": 51.0,
                    "error": "", "phases": {"connect": 0.2, "processing": 50.5}, "tls": None, "tls_not_after": None,
                    "tls_fingerprint": "", "failed_condition": ""})
            app.send_task("lookout.probes.remote.results_record", kwargs={"results": results}, queue="results",
                          producer=producer)


def run_recorder(env: dict, workdir: str, expected: int, *, seconds: float) -> dict:
    metrics_port = stack.free_port()
    log = Path(workdir, "recorder.log")
    worker = stack.process_start([*stack.LOOKOUT, "worker", "--queues", "results", "--loglevel", "WARNING"],
                                 env={**env, "LOOKOUT_METRICS_PORT": str(metrics_port)}, log=log, cwd=workdir)
    try:
        stack.process_wait_http(worker, f"http://127.0.0.1:{metrics_port}/readyz", log=log, timeout=60,
                                what="the worker")
        stack.wait_until(lambda: probes_bench.result_count(env["DATABASE_URL"]) > 0, timeout=60,
                         what="the first recorded result")
        wall0, cpu0 = time.perf_counter(), common.proc_cpu_seconds(worker.pid)
        count0, services0 = probes_bench.result_count(env["DATABASE_URL"]), probes_bench.services_cpu_seconds()
        end = wall0 + seconds
        while time.perf_counter() < end and probes_bench.result_count(env["DATABASE_URL"]) < expected:
            time.sleep(0.2)
        wall1, cpu1 = time.perf_counter(), common.proc_cpu_seconds(worker.pid)
        count1, services1 = probes_bench.result_count(env["DATABASE_URL"]), probes_bench.services_cpu_seconds()
    finally:
        stack.processes_stop([worker], timeout=20)
    return {"rows": count1 - count0, "wall": wall1 - wall0, "cpu": cpu1 - cpu0, "services": services1 - services0}


SPEC: dict = {}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, default=100, help="agent greenlets (default 100)")
    parser.add_argument("--delay-ms", type=float, default=50.0, help="the target's added latency (default 50)")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured window (default 10)")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured start (default 3)")
    parser.add_argument("--monitors", type=int, default=500, help="monitors (default 500)")
    parser.add_argument("--results", type=int, default=20000, help="results for the recording run (default 20000)")
    parser.add_argument("--batch", type=int, default=10, help="results per message (default 10)")
    args = parser.parse_args()

    me = [sys.executable, os.path.join(BENCH, "probes.py")]
    name = f"lookout_bench_regions_{os.getpid()}"
    workdir = tempfile.mkdtemp(prefix="lookout-bench-")
    target = subprocess.Popen([*me, "--role", "target", str(args.delay_ms / 1000)], stdout=subprocess.PIPE, text=True)
    counter = None
    try:
        assert target.stdout is not None
        url = f"http://127.0.0.1:{int(target.stdout.readline())}/"
        database_url = stack.database_create(name)
        broker_url = stack.vhost_create(name, required=True)
        env = common.bench_environment(database_url, broker_url, LOOKOUT_REGIONS=f"home,{REGION}")
        stack.lookout_run(env, "migrate")
        stack.lookout_run(env, "manage", "declarequeues")
        env["REGION_KEY"] = stack.lookout_run(env, "manage", "regionkey", REGION).strip()
        common.django_setup({key: value for key, value in env.items() if key != "REGION_KEY"})
        ids = common.seed_monitors(args.monitors, interval=60, url=url, enabled=False)
        from lookout.monitors.models import Monitor

        Monitor.objects.filter(pk__in=ids).update(status="up", health="up", enabled=True, regions=["home", REGION])
        SPEC.update({"url": url, "type": "http", "method": "GET", "timeout": 10.0})
        print(f"Regions benchmark: GET {url} (+{args.delay_ms:g} ms), agent concurrency {args.concurrency}, "
              f"window {args.seconds:g} s after {args.warmup:g} s, {len(os.sched_getaffinity(0))} CPUs", flush=True)

        ceiling = args.concurrency * 1000 / args.delay_ms
        runs_fill(broker_url, ids, int(min(ceiling, 1500) * (args.warmup + args.seconds + 20)))
        counter = ResultCounter(broker_url)
        agent = run_agent(env, workdir, args.concurrency, counter, warmup=args.warmup, seconds=args.seconds)
        counter.close()
        counter = None
        bare_run = subprocess.run([*me, "--role", "bare", url, str(args.concurrency), str(args.warmup),
                                   str(args.seconds)], capture_output=True, text=True, timeout=120)
        if bare_run.returncode != 0:
            raise SystemExit(f"bare loop failed:\n{bare_run.stderr}")
        bare = json.loads(bare_run.stdout.strip().splitlines()[-1])

        # The agent's results are still on `results` (the counter acknowledged those it counted): purge, then fill.
        from kombu import Connection

        with Connection(broker_url) as connection:
            connection.default_channel.queue_purge("results")
        results_fill(broker_url, ids, args.results, args.batch)
        from django.db import connection as db

        db.close()
        recorder = run_recorder({key: value for key, value in env.items() if key != "REGION_KEY"}, workdir,
                                args.results, seconds=max(args.seconds, 60))
    finally:
        if counter is not None:
            counter.close()
        stack.processes_stop([target], timeout=5)
        common.run_services_drop(name)

    print(f"{'run':<12} {'probes':>7} {'probes/s':>9} {'CPU s':>6} {'CPU ms/probe':>12} {'probes/CPU-s':>12} "
          f"{'RSS MiB':>7}")
    for label, run in (("agent", agent), ("bare-gevent", bare)):
        print(f"{label:<12} {run['probes']:>7} {run['probes'] / run['wall']:>9.1f} {run['cpu']:>6.2f} "
              f"{1000 * run['cpu'] / max(run['probes'], 1):>12.3f} {run['probes'] / max(run['cpu'], 1e-9):>12.0f} "
              f"{run.get('rss', float('nan')):>7.1f}")
    agent_rate = agent["probes"] / max(agent["cpu"], 1e-9)
    bare_rate = bare["probes"] / max(bare["cpu"], 1e-9)
    print(f"ratio agent / bare gevent + requests: {agent_rate / bare_rate:.2f}x probes per CPU-second, "
          f"{(agent['probes'] / agent['wall']) / max(bare['probes'] / bare['wall'], 1e-9):.2f}x probes per second")
    print(f"recording other regions' results ({args.batch} per message): {recorder['rows']} rows in "
          f"{recorder['wall']:.1f} s = {recorder['rows'] / recorder['wall']:.0f} rows/s, worker CPU "
          f"{recorder['cpu']:.2f} s = {recorder['rows'] / max(recorder['cpu'], 1e-9):.0f} rows per worker CPU-second "
          f"({1000 * recorder['cpu'] / max(recorder['rows'], 1):.3f} ms a row); PG+MQ busy "
          f"{100 * recorder['services'] / recorder['wall']:.0f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
