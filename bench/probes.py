"""Worker benchmark: probes per second and CPU per probe of ONE `lookout worker` process against a local
target that adds latency, versus a bare gevent + requests loop on the same target in the same run.

    .venv/bin/python bench/probes.py [--concurrency 50,200,500] [--delay-ms 50] [--seconds 10] [--warmup 3]

What runs, each in its own process, all on 127.0.0.1:
- target: an asyncio HTTP server that waits --delay-ms before answering 200 (2-byte body, Connection: close),
  so a probe is network-bound as a real one is;
- worker: `lookout worker` (Celery, gevent pool, LOOKOUT_WORKER_CONCURRENCY = each --concurrency, its default
  database pool unless --db-pool) on a fresh database and RabbitMQ vhost, with --monitors HTTP monitors on the
  target (already up, so no alerting work). Before each worker starts, this process fills its `probes` queue
  with enough probe_monitor messages for the whole run (app.send_task, as beat sends them; no beat runs), so
  publishing does not compete with the worker for the CPU; it tops the queue up only if it runs low, and says
  so. Probes are counted as ProbeResult rows written in the window; CPU is the worker process's own user +
  system time (PostgreSQL's and RabbitMQ's are shown beside it, not counted);
- baseline: one process, gevent.monkey.patch_all(), N greenlets doing requests.get(target) in a loop: the
  ceiling for gevent + requests on this machine and target (no database, no broker, no probe engine).

--profile PREFIX records each worker's window with py-spy (CPU samples, collapsed stacks): a profiled run's
figures include py-spy's own cost.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

BENCH = os.path.dirname(os.path.abspath(__file__))
# bench/_common.py, and tests/support/stack.py: the database, vhost, port and process helpers the tests use too.
sys.path[:0] = [BENCH, os.path.join(os.path.dirname(BENCH), "tests")]

import _common as common  # noqa: E402

from support import stack  # noqa: E402

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"


def role_target(delay: float) -> None:
    import asyncio

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            await asyncio.sleep(delay)
            writer.write(RESPONSE)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def serve() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=4096)
        print(server.sockets[0].getsockname()[1], flush=True)
        await server.serve_forever()

    asyncio.run(serve())


def role_bare(url: str, concurrency: int, warmup: float, seconds: float) -> None:
    from gevent import monkey

    monkey.patch_all()

    import resource

    import gevent
    import requests

    start = time.perf_counter()
    window_start, window_end = start + warmup, start + warmup + seconds
    done = failures = 0
    marks: dict[str, float] = {}

    def loop() -> None:
        nonlocal done, failures
        while time.perf_counter() < window_end:
            try:
                ok = requests.get(url, timeout=5).status_code == 200
            except requests.RequestException:
                ok = False
            if window_start <= time.perf_counter() < window_end:
                done += 1
                failures += not ok

    def mark(name: str, at: float) -> None:
        gevent.sleep(max(0.0, at - time.perf_counter()))
        usage = resource.getrusage(resource.RUSAGE_SELF)
        marks[name + "_wall"], marks[name + "_cpu"] = time.perf_counter(), usage.ru_utime + usage.ru_stime

    greenlets = [gevent.spawn(loop) for _ in range(concurrency)]
    greenlets += [gevent.spawn(mark, "start", window_start), gevent.spawn(mark, "end", window_end)]
    gevent.joinall(greenlets, raise_error=True)
    print(json.dumps({"probes": done, "failures": failures, "wall": marks["end_wall"] - marks["start_wall"],
                      "cpu": marks["end_cpu"] - marks["start_cpu"]}))


class Feeder:
    """Fills the probes queue before each worker run, and tops it up if it runs low during one.

    Publishing costs CPU (~0.65 ms a message here, app.send_task without publisher confirms): done up front, it
    is not counted against the worker, which shares the machine. `topped_up` says whether the window needed any.
    """

    def __init__(self, broker_url: str, ids: list[int], low: int) -> None:
        self.broker_url, self.ids, self.low = broker_url, ids, low
        self.stop_event = threading.Event()
        self.sent = self.topped_up = 0
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _publish(self, channel, count: int) -> None:
        from lookout.config.celery_app import app
        from lookout.scheduling.schedules import PROBE_TASK

        producer = app.amqp.Producer(channel)
        for _ in range(count):
            app.send_task(PROBE_TASK, args=[self.ids[self.sent % len(self.ids)]], queue="probes", producer=producer)
            self.sent += 1

    @staticmethod
    def _backlog(connection):
        """(messages in the queue, a usable channel): the first publish declares the queue, as beat's does."""
        channel = connection.channel()
        try:
            return channel.queue_declare("probes", passive=True)[1], channel
        except Exception:  # not declared yet; the failed passive declare closed the channel
            return 0, connection.channel()

    def fill(self, depth: int) -> None:
        from kombu import Connection

        with Connection(self.broker_url) as connection:
            backlog, channel = self._backlog(connection)
            self._publish(channel, max(0, depth - backlog))

    def _run(self) -> None:
        from kombu import Connection

        failures = 0
        while not self.stop_event.is_set():
            try:
                with Connection(self.broker_url) as connection:
                    while not self.stop_event.is_set():
                        backlog, channel = self._backlog(connection)
                        if backlog < self.low:
                            self._publish(channel, self.low)
                            self.topped_up += self.low
                        channel.close()
                        failures = 0
                        time.sleep(0.1)
            except Exception as exc:  # the broker is shared: ride out a restart, report a lasting failure
                failures += 1
                if failures >= 30:
                    self.error = exc
                    return
                time.sleep(1)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        if self.thread.is_alive():
            self.thread.join(30)


def services_cpu_seconds() -> float:
    """User + system CPU of every PostgreSQL and RabbitMQ process on the machine (other work's included)."""
    total = 0.0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/comm") as comm:
                if comm.read().strip() not in ("postgres", "beam.smp"):
                    continue
            total += common.proc_cpu_seconds(int(pid))
        except OSError:  # gone meanwhile
            continue
    return total


def result_count(database_url: str) -> int:
    import psycopg

    from lookout.monitors.models import ProbeResult

    with psycopg.connect(database_url.replace("postgres://", "postgresql://")) as conn:
        return conn.execute(f"SELECT count(*) FROM {ProbeResult._meta.db_table}").fetchone()[0]


def run_worker(env: dict, workdir: str, concurrency: int, *, warmup: float, seconds: float,
               profile: str | None = None) -> dict:
    import subprocess

    metrics_port = stack.free_port()
    log = Path(workdir, f"worker-{concurrency}.log")
    worker = stack.process_start([*stack.LOOKOUT, "worker", "--loglevel", "WARNING"],
                                 env={**env, "LOOKOUT_WORKER_CONCURRENCY": str(concurrency),
                                      "LOOKOUT_METRICS_PORT": str(metrics_port)}, log=log, cwd=workdir)
    try:
        stack.process_wait_http(worker, f"http://127.0.0.1:{metrics_port}/readyz", log=log, timeout=60,
                                what="the worker")
        time.sleep(warmup)
        database_url = env["DATABASE_URL"]
        wall0, cpu0, count0 = time.perf_counter(), common.proc_cpu_seconds(worker.pid), result_count(database_url)
        services0 = services_cpu_seconds()
        spy = None
        if profile:
            py_spy = os.path.join(os.path.dirname(sys.executable), "py-spy")
            spy = subprocess.Popen([py_spy, "record", "-p", str(worker.pid), "-d", str(int(seconds)), "-r", "100",
                                    "-f", "raw", "-o", profile], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(seconds)
        wall1, cpu1, count1 = time.perf_counter(), common.proc_cpu_seconds(worker.pid), result_count(database_url)
        services1 = services_cpu_seconds()
        if spy is not None:
            spy.wait(timeout=30)
        rss = common.proc_peak_rss_mib(worker.pid)
    finally:
        stack.processes_stop([worker], timeout=20)
    return {"probes": count1 - count0, "failures": 0, "wall": wall1 - wall0, "cpu": cpu1 - cpu0, "rss": rss,
            "services": services1 - services0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", default="50,200,500",
                        help="greenlets, comma-separated (default 50,200,500)")
    parser.add_argument("--delay-ms", type=float, default=50.0, help="the target's added latency (default 50)")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured window per run (default 10)")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured start of each run (default 3)")
    parser.add_argument("--monitors", type=int, default=2000, help="monitors probed round-robin (default 2000)")
    parser.add_argument("--db-pool", type=int, default=None,
                        help="LOOKOUT_DB_POOL_SIZE of the worker (default: unset, `lookout worker`'s own default; "
                             "0: no pool)")
    parser.add_argument("--profile", metavar="PREFIX", default=None,
                        help="py-spy record each worker over its window to PREFIX-<concurrency>.txt (collapsed "
                             "stacks, CPU samples only; .venv/bin/py-spy, may need root)")
    args = parser.parse_args()
    concurrencies = [int(value) for value in args.concurrency.split(",")]
    ceiling = 1000 / args.delay_ms

    import shutil
    import subprocess
    import tempfile

    me = [sys.executable, os.path.abspath(__file__)]
    name = f"lookout_bench_probes_{os.getpid()}"
    workdir = tempfile.mkdtemp(prefix="lookout-bench-")
    processes: list[subprocess.Popen] = []
    feeder = None
    rows = []
    try:
        target = subprocess.Popen([*me, "--role", "target", str(args.delay_ms / 1000)], stdout=subprocess.PIPE,
                                  text=True)
        processes.append(target)
        assert target.stdout is not None
        url = f"http://127.0.0.1:{int(target.stdout.readline())}/"
        database_url = stack.database_create(name)
        broker_url = stack.vhost_create(name, required=True)  # it counts the queue's messages
        env = common.bench_environment(database_url, broker_url, **(
            {} if args.db_pool is None else {"LOOKOUT_DB_POOL_SIZE": str(args.db_pool)}))
        stack.lookout_run(env, "migrate")
        common.django_setup(env)
        ids = common.seed_monitors(args.monitors, interval=60, url=url, enabled=False)
        from lookout.monitors.models import Monitor

        # Already up: every probe is a plain success, no state transition, no alert.
        Monitor.objects.filter(pk__in=ids).update(status="up", health="up")
        from django.db import connection

        connection.close()
        print(f"Worker benchmark: GET {url} (+{args.delay_ms:g} ms, Connection: close), {args.monitors} monitors, "
              f"window {args.seconds:g} s after {args.warmup:g} s warm-up, {len(os.sched_getaffinity(0))} CPUs, "
              f"Python {sys.version.split()[0]}", flush=True)
        feeder = Feeder(broker_url, ids, low=max(2000, 4 * max(concurrencies)))
        for concurrency in concurrencies:
            # Enough for the whole run at up to 1,000 probes/s (more than one worker process does here).
            feeder.fill(int(min(concurrency * ceiling, 1000) * (args.warmup + args.seconds + 10)))
            if not feeder.thread.is_alive():
                feeder.start()
            topped_up = feeder.topped_up
            worker = run_worker(env, workdir, concurrency, warmup=args.warmup, seconds=args.seconds,
                                profile=f"{args.profile}-{concurrency}.txt" if args.profile else None)
            worker["topped_up"] = feeder.topped_up - topped_up
            if feeder.error:
                raise SystemExit(f"feeding the queue failed: {feeder.error!r}")
            done = subprocess.run([*me, "--role", "bare", url, str(concurrency), str(args.warmup),
                                   str(args.seconds)], capture_output=True, text=True, timeout=120)
            if done.returncode != 0:
                raise SystemExit(f"bare loop failed:\n{done.stderr}")
            bare = json.loads(done.stdout.strip().splitlines()[-1])
            rows.append((concurrency, worker, bare))
    finally:
        if feeder is not None:
            feeder.stop()
        stack.processes_stop(processes, timeout=5)
        common.run_services_drop(name)
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"{'run':<12} {'conc':>5} {'probes':>7} {'probes/s':>9} {'latency-bound':>13} {'CPU s':>6} "
          f"{'CPU ms/probe':>12} {'CPU busy':>8} {'RSS MiB':>7} {'PG+MQ busy':>10}")
    ratios = []
    for concurrency, worker, bare in rows:
        for label, run in (("lookout", worker), ("bare-gevent", bare)):
            rate = run["probes"] / run["wall"]
            print(f"{label:<12} {concurrency:>5} {run['probes']:>7} {rate:>9.1f} {concurrency * ceiling:>13.0f} "
                  f"{run['cpu']:>6.2f} {1000 * run['cpu'] / max(run['probes'], 1):>12.3f} "
                  f"{100 * run['cpu'] / run['wall']:>7.0f}% {run.get('rss', float('nan')):>7.1f} "
                  + (f"{100 * run['services'] / run['wall']:>9.0f}%" if "services" in run else f"{'':>10}"))
        ratios.append((concurrency, (worker["probes"] / worker["wall"]) / max(bare["probes"] / bare["wall"], 1e-9)))
    for concurrency, worker, _ in rows:
        if worker["topped_up"]:
            print(f"(concurrency {concurrency}: the queue ran low during the worker's run and {worker['topped_up']} "
                  "messages were published meanwhile, on the same CPUs)")
    print("ratio lookout worker / bare gevent + requests, probes per second: "
          + ", ".join(f"{ratio:.2f}x at concurrency {concurrency}" for concurrency, ratio in ratios))
    print("(latency-bound: concurrency / target delay, what no CPU limit would allow; CPU busy: the process's "
          "CPU time over the window, 100% = one core; PG+MQ busy: all PostgreSQL and RabbitMQ processes' on the "
          "machine, in the worker's window)")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--role"]:
        role, rest = sys.argv[2], sys.argv[3:]
        if role == "target":
            role_target(float(rest[0]))
        elif role == "bare":
            role_bare(rest[0], int(rest[1]), float(rest[2]), float(rest[3]))
        sys.exit(0)
    sys.exit(main())
