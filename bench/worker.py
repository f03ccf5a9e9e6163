"""Worker end to end, batched runs (issue 18): probes per CPU-second of ONE `lookout worker` process fed batch
messages at 10 %, 50 % and 100 % of its capacity, against the probe engine alone and the bare gevent + requests
loop on the same target in the same run; and its memory per probe in flight.

    .venv/bin/python bench/worker.py [--seconds 10] [--monitors 20000] [--loads 10,50,100] [--delay-ms 5]

Everything on 127.0.0.1, each part in its own process:
- target: an asyncio HTTP server (200, 2-byte body, Connection: close; each answer after --delay-ms), so every
  probe opens a TCP connection of its own, as a monitor's does (no nginx on this machine);
- worker: `lookout worker` (Celery, gevent pool) on a fresh database and RabbitMQ vhost, --monitors HTTP monitors
  of the target, already up (a plain success changes no state and alerts nobody);
- the feeder (this process) publishes `lookout.probes.tasks.probe_batch` messages in the contract's format, as beat
  makes them at a given rate with a 0.1 s linger (--linger) and LOOKOUT_RUN_BATCH_SIZE 100: every 0.1 s the runs
  due in it, in messages of at most 100 runs (at 150 runs/s, one message of 15 runs every 0.1 s);
- capacity (100 %): the worker draining a queue filled beforehand with full batches, in probes per CPU-second
  (what it does with a whole core: on a shared machine it may get less than one); then each --loads percentage
  of that capacity, paced (at 100 % on a machine that leaves it less than a core, a backlog builds up).
  Probes = ProbeResult rows written in the window; CPU = the worker process's own utime + stime from
  /proc/<pid>/stat (all its threads) over the window;
- baselines, same target, same run: the probe engine alone (bench/probe_engine.py's lookout role: N greenlets
  calling probe() in a loop) and the bare loop (bench/probes.py's: N greenlets calling requests.get);
- memory: the worker with probes held in flight by a slow target (answers after 8 s): RSS with --in-flight-low,
  then --in-flight-high probes open (counted as its established connections to the target, /proc/net/tcp); the
  difference divided by the difference in probes is the memory per probe in flight.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [BENCH, os.path.join(os.path.dirname(BENCH), "tests")]

import _common as common  # noqa: E402
from _target import serve  # noqa: E402

from support import stack  # noqa: E402

BATCH_TASK = "lookout.probes.tasks.probe_batch"
BATCH_SIZE = 100
LINGER = 0.1


def role_target(delay: float) -> None:
    serve(delay=delay)


class Feeder:
    """Publishes batch messages as beat does: every LINGER seconds the runs due meanwhile, <= BATCH_SIZE a message."""

    def __init__(self, broker_url: str, ids: list[int]) -> None:
        from kombu import Connection

        from lookout.config.celery_app import app

        self.app = app
        self.connection = Connection(broker_url)
        self.producer = app.amqp.Producer(self.connection.channel())
        self.ids = ids
        self.sent = 0
        self.messages = 0

    def publish(self, count: int, *, due: float) -> None:
        expires = due + 60
        while count > 0:
            size = min(BATCH_SIZE, count)
            runs = []
            for _ in range(size):
                runs.append([self.ids[self.sent % len(self.ids)], f"bench-{self.sent}", due])
                self.sent += 1
            task_id = str(uuid.uuid5(uuid.NAMESPACE_URL, ",".join(sorted(run[1] for run in runs))))
            self.app.send_task(BATCH_TASK, kwargs={"runs": runs, "expires": expires}, task_id=task_id,
                               queue="probes", producer=self.producer, expires=datetime.fromtimestamp(expires, UTC),
                               headers={"lookout_due_at": due})
            self.messages += 1
            count -= size

    def paced(self, rate: float, stop: threading.Event, linger: float = LINGER) -> None:
        owed = 0.0
        tick = time.time()
        while not stop.is_set():
            owed += rate * linger
            whole = int(owed)
            owed -= whole
            if whole:
                self.publish(whole, due=tick)
            tick += linger
            time.sleep(max(0.0, tick - time.time()))


def established_to(port: int) -> int:
    """TCP connections in ESTABLISHED state to 127.0.0.1:port, as /proc/net/tcp lists them (the probes open)."""
    wanted = f":{port:04X}"
    with open("/proc/net/tcp") as table:
        next(table)
        return sum(1 for line in table if (fields := line.split())[2].endswith(wanted) and fields[3] == "01")


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def result_count(database_url: str) -> int:
    import psycopg

    with psycopg.connect(database_url.replace("postgres://", "postgresql://")) as conn:
        return conn.execute("SELECT count(*) FROM monitors_proberesult").fetchone()[0]


def queue_depth(connection) -> int:
    channel = connection.channel()
    try:
        return channel.queue_declare("probes", passive=True)[1]
    except Exception:
        return 0
    finally:
        try:
            channel.close()
        except Exception:
            pass


def worker_start(env: dict, workdir: str, name: str, **extra: str) -> tuple[subprocess.Popen, int]:
    metrics_port = stack.free_port()
    log = Path(workdir, f"worker-{name}.log")
    worker = stack.process_start([*stack.LOOKOUT, "worker", "--loglevel", "WARNING", "--queues", "probes"],
                                 env={**env, "LOOKOUT_METRICS_PORT": str(metrics_port), **extra}, log=log, cwd=workdir)
    stack.process_wait_http(worker, f"http://127.0.0.1:{metrics_port}/readyz", log=log, timeout=90, what="the worker")
    return worker, metrics_port


def window(worker: subprocess.Popen, database_url: str, seconds: float, profile: str | None = None) -> dict:
    spy = None
    if profile:
        py_spy = os.path.join(os.path.dirname(sys.executable), "py-spy")
        spy = subprocess.Popen([py_spy, "record", "-p", str(worker.pid), "-d", str(int(seconds)), "-r", "100",
                                "-f", "raw", "-o", profile], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall0, cpu0, count0 = time.perf_counter(), common.proc_cpu_seconds(worker.pid), result_count(database_url)
    time.sleep(seconds)
    if spy is not None:
        spy.wait(timeout=30)
    wall1, cpu1, count1 = time.perf_counter(), common.proc_cpu_seconds(worker.pid), result_count(database_url)
    return {"probes": count1 - count0, "wall": wall1 - wall0, "cpu": cpu1 - cpu0, "rss": rss_mib(worker.pid)}


def drain(connection, database_url: str, expected: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and (queue_depth(connection) or result_count(database_url) < expected):
        time.sleep(0.2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measured window per load (default 10)")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured start of each load (default 3)")
    parser.add_argument("--monitors", type=int, default=20000, help="monitors the runs go round (default 20000)")
    parser.add_argument("--loads", default="10,50,100", help="percentages of the measured capacity (default 10,50,100)")
    parser.add_argument("--delay-ms", type=float, default=5.0, help="the target's added latency (default 5)")
    parser.add_argument("--concurrency", type=int, default=8,
                        help="LOOKOUT_WORKER_CONCURRENCY: batch messages at once (default 8)")
    parser.add_argument("--in-flight", type=int, default=500, help="LOOKOUT_WORKER_PROBES_IN_FLIGHT (default 500)")
    parser.add_argument("--baseline-concurrency", type=int, default=50,
                        help="greenlets of the engine-alone and bare loops (default 50)")
    parser.add_argument("--in-flight-low", type=int, default=200)
    parser.add_argument("--in-flight-high", type=int, default=1000)
    parser.add_argument("--linger", type=float, default=LINGER,
                        help=f"beat's linger the feeder imitates, LOOKOUT_BEAT_LINGER_SECONDS (default {LINGER})")
    parser.add_argument("--skip-memory", action="store_true", help="no memory-per-probe measurement")
    parser.add_argument("--worker-env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra environment of the worker (e.g. LOOKOUT_DB_POOL_SIZE=4), repeatable")
    parser.add_argument("--profile", metavar="PREFIX", default=None,
                        help="py-spy record the worker over each window to PREFIX-<load>.txt (collapsed stacks)")
    args = parser.parse_args()
    loads = [int(value) for value in args.loads.split(",")]

    import shutil
    import tempfile

    from kombu import Connection

    name = f"lookout_bench_worker_{os.getpid()}"
    workdir = tempfile.mkdtemp(prefix="lookout-bench-worker-")
    processes: list[subprocess.Popen] = []
    rows: list[tuple[str, dict]] = []
    memory: dict = {}
    try:
        def target(delay_ms: float) -> tuple[str, int]:
            process = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--role", "target",
                                        str(delay_ms / 1000)], stdout=subprocess.PIPE, text=True)
            processes.append(process)
            assert process.stdout is not None
            port = int(process.stdout.readline())
            return f"http://127.0.0.1:{port}/", port

        url, _ = target(args.delay_ms)
        database_url = stack.database_create(name)
        broker_url = stack.vhost_create(name, required=True)
        env = common.bench_environment(database_url, broker_url,
                                       LOOKOUT_WORKER_CONCURRENCY=str(args.concurrency),
                                       LOOKOUT_WORKER_PROBES_IN_FLIGHT=str(args.in_flight),
                                       **dict(value.split("=", 1) for value in args.worker_env))
        stack.lookout_run(env, "migrate")
        common.django_setup(env)
        ids = common.seed_monitors(args.monitors, interval=60, url=url, enabled=False)
        from django.db import connection as db

        from lookout.monitors.models import Monitor

        Monitor.objects.filter(pk__in=ids).update(status="up", health="up", enabled=True)
        db.close()
        print(f"Worker end to end (batched runs): GET {url} (+{args.delay_ms:g} ms, Connection: close), "
              f"{args.monitors} monitors, windows of {args.seconds:g} s after {args.warmup:g} s, worker "
              f"LOOKOUT_WORKER_CONCURRENCY={args.concurrency} LOOKOUT_WORKER_PROBES_IN_FLIGHT={args.in_flight}, "
              f"beat linger {args.linger:g} s, "
              f"{len(os.sched_getaffinity(0))} CPUs, Python {sys.version.split()[0]}", flush=True)

        feeder = Feeder(broker_url, ids)
        broker = Connection(broker_url)
        worker, _ = worker_start(env, workdir, "load")
        processes.append(worker)
        time.sleep(2)
        idle = window(worker, database_url, 3.0)
        print(f"  idle worker: {100 * idle['cpu'] / idle['wall']:.1f}% of a core", flush=True)
        # Capacity: a queue of full batches, enough for the whole window at well above what one process does.
        backlog = int(3000 * (args.warmup + args.seconds + 5))
        feeder.publish(backlog, due=time.time())
        time.sleep(args.warmup)
        capacity = window(worker, database_url, args.seconds,
                          f"{args.profile}-saturated.txt" if args.profile else None)
        capacity["load"], capacity["messages"] = "saturated", backlog / BATCH_SIZE
        rows.append(("worker", capacity))
        # Capacity: what the process does with a whole core, probes per CPU-second while saturated. Not its
        # probes per second here: the machine is shared, and the process gets what the others leave it.
        rate_max = capacity["probes"] / max(capacity["cpu"], 1e-9)
        print(f"  capacity: {rate_max:.0f} probes per CPU-second ({capacity['probes'] / capacity['wall']:.0f}/s "
              f"at {100 * capacity['cpu'] / capacity['wall']:.0f}% of a core), queue of full batches", flush=True)
        broker_purge(broker)
        drain(broker, database_url, 0, timeout=60)
        for load in loads:
            rate = rate_max * load / 100
            stop = threading.Event()
            sent = feeder.messages
            pacer = threading.Thread(target=feeder.paced, args=(rate, stop, args.linger), daemon=True)
            pacer.start()
            time.sleep(args.warmup)
            measured = window(worker, database_url, args.seconds,
                              f"{args.profile}-{load}.txt" if args.profile else None)
            stop.set()
            pacer.join(10)
            measured["load"] = f"{load}% ({rate:.0f}/s)"
            measured["messages"] = feeder.messages - sent
            measured["backlog"] = queue_depth(broker)
            rows.append(("worker", measured))
            print(f"  {load}%: {measured['probes'] / measured['wall']:.0f} probes/s, "
                  f"{measured['probes'] / max(measured['cpu'], 1e-9):.0f} per CPU-s", flush=True)
            broker_purge(broker)
            time.sleep(1)
        stack.processes_stop([worker], timeout=20)

        for role, script in (("engine", "probe_engine.py"), ("bare", "probes.py")):
            command = [sys.executable, os.path.join(BENCH, script), "--role", "lookout" if role == "engine" else role,
                       url, str(args.baseline_concurrency), str(args.warmup), str(args.seconds)]
            done = subprocess.run(command, capture_output=True, text=True, timeout=120,
                                  env={**os.environ, "LOOKOUT_ALLOW_PRIVATE_TARGETS": "true"})
            if done.returncode != 0:
                raise SystemExit(f"{role} loop failed:\n{done.stderr}")
            result = json.loads(done.stdout.strip().splitlines()[-1])
            result["load"] = f"saturated, {args.baseline_concurrency} greenlets"
            rows.append((role, result))

        if not args.skip_memory:
            memory = memory_per_probe(env, workdir, database_url, broker_url, target, args)
    finally:
        stack.processes_stop(processes, timeout=5)
        common.run_services_drop(name)
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"{'run':<8} {'load':<28} {'probes':>7} {'probes/s':>9} {'CPU s':>6} {'CPU ms/probe':>12} "
          f"{'probes/CPU-s':>12} {'CPU busy':>8} {'messages':>8}")
    per_cpu: dict[str, float] = {}
    for label, run in rows:
        rate = run["probes"] / run["wall"]
        efficiency = run["probes"] / max(run["cpu"], 1e-9)
        if label != "worker":
            per_cpu[label] = efficiency
        print(f"{label:<8} {run['load']:<28} {run['probes']:>7} {rate:>9.1f} {run['cpu']:>6.2f} "
              f"{1000 * run['cpu'] / max(run['probes'], 1):>12.3f} {efficiency:>12.0f} "
              f"{100 * run['cpu'] / run['wall']:>7.0f}% {run.get('messages', ''):>8}")
    for label, run in rows:
        if label == "worker":
            efficiency = run["probes"] / max(run["cpu"], 1e-9)
            print(f"ratio worker ({run['load']}) / engine alone: {efficiency / per_cpu['engine']:.2f}x, "
                  f"/ bare gevent+requests: {efficiency / per_cpu['bare']:.2f}x (probes per CPU-second)")
    if memory:
        print(f"memory per probe in flight: RSS {memory['low_rss']:.1f} MiB with {memory['low']} probes open, "
              f"{memory['high_rss']:.1f} MiB with {memory['high']}: {memory['per_probe_kib']:.1f} KiB per probe "
              f"(LOOKOUT_WORKER_PROBES_IN_FLIGHT={memory['limit']}; idle RSS {memory['idle_rss']:.1f} MiB)")
    return 0


def broker_purge(connection) -> None:
    channel = connection.channel()
    try:
        channel.queue_purge("probes")
    finally:
        channel.close()


def memory_per_probe(env: dict, workdir: str, database_url: str, broker_url: str, target, args) -> dict:
    from django.db import connection as db

    from lookout.monitors.models import Monitor

    slow_url, slow_port = target(8000.0)
    high = args.in_flight_high
    slow_ids = list(Monitor.objects.order_by("pk").values_list("pk", flat=True)[: high])
    Monitor.objects.filter(pk__in=slow_ids).update(url=slow_url, timeout=10)
    db.close()
    worker, _ = worker_start(env, workdir, "memory", LOOKOUT_WORKER_PROBES_IN_FLIGHT=str(high),
                             LOOKOUT_WORKER_CONCURRENCY=str(high // BATCH_SIZE + 2))
    try:
        feeder = Feeder(broker_url, slow_ids)
        feeder.publish(BATCH_SIZE, due=time.time())  # warm: one batch through, then idle
        time.sleep(10)
        idle = rss_mib(worker.pid)
        figures = {"idle_rss": idle, "limit": high}
        for key, count in (("low", args.in_flight_low), ("high", high)):
            feeder.publish(count, due=time.time())
            deadline = time.monotonic() + 6
            while established_to(slow_port) < count and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(0.5)
            figures[key], figures[f"{key}_rss"] = established_to(slow_port), rss_mib(worker.pid)
            time.sleep(9)  # the slow answers arrive, the probes finish
        figures["per_probe_kib"] = 1024 * (figures["high_rss"] - figures["low_rss"]) / max(
            figures["high"] - figures["low"], 1)
        return figures
    finally:
        stack.processes_stop([worker], timeout=20)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--role"]:
        if sys.argv[2] == "target":
            role_target(float(sys.argv[3]))
        sys.exit(0)
    sys.exit(main())
