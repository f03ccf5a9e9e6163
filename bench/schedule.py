"""Schedule benchmark: a real `celery beat` dispatching N interval monitors to RabbitMQ, Lookout's scheduler at N
against the stock django-celery-beat DatabaseScheduler at --stock-monitors (10k by default), in the same run.

    .venv/bin/python bench/schedule.py [N] [--interval 60] [--seconds 30] [--lead auto] [--stock-monitors 10000]

One fresh PostgreSQL database and one fresh RabbitMQ vhost for the run. For each scheduler in turn (stock first,
then Lookout's), its PeriodicTask rows are inserted in one INSERT ... SELECT generate_series (beat reads nothing
else; a row's args are `[<its number>]`, the monitor id it stands for), every --interval, their first runs
spread evenly over one interval from --lead seconds after the rows were written (so the due rate is a uniform
count / interval per second), and one beat process runs (`python -m celery -A lookout.config.celery_app beat -S
<scheduler>`). The stock scheduler's rows are deleted before Lookout's are written.

A consumer in a process of its own (raw kombu, no ack, prefetch 2000, no Celery worker) records every run on the
`probes` queue: arrival time, monitor id, due time (a batch message's runs one by one, each with its own due;
the stock scheduler's single messages carry no due time, it is reconstructed as it computes it: first run the
seeded due time, later runs the previous arrival + interval), and every message's arrival.

Measured over the window [first due, first due + --seconds]:
- runs/s sent (runs that arrived in the window) against due (count / interval); messages/s through RabbitMQ;
- lag p50/p99/max per run = arrival at the consumer - its due; runs due in the window still unsent at its end
  count in "max incl. unsent";
- beat's CPU in the window (cores = CPU s / window s, and µs per run), peak RSS (VmHWM) of the beat process,
  RabbitMQ's CPU (beam.smp), the CPU of the PostgreSQL backends of the run's database (beat's reads and its
  last_run_at writes; the consumer never touches PostgreSQL), the consumer's own CPU;
- the full read at start (beat's log line "dispatching N schedules (read in Xs)");
- change propagation: in the middle of the window the schedule of a monitor due 3 s earlier (sent by then if beat
  keeps up) gets interval 1 s, saved through the ORM as the monitor services save it (the NOTIFY trigger fires);
  under the new interval it is due at once, so the figure is the time from the commit to its next run's arrival.
"""

from __future__ import annotations

import argparse
import array
import os
import pickle
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = os.path.dirname(os.path.abspath(__file__))
# bench/_common.py, and tests/support/stack.py: the database, vhost, port and process helpers the tests use too.
sys.path[:0] = [BENCH, os.path.join(os.path.dirname(BENCH), "tests")]

import _common as common  # noqa: E402

from support import stack  # noqa: E402

CELERY_APP = "lookout.config.celery_app"
SCHEDULERS = {
    "stock": "django_celery_beat.schedulers:DatabaseScheduler",
    "lookout": "lookout.scheduling.scheduler:LookoutScheduler",
}
DUE_AT_HEADER = "lookout_due_at"
BATCH_TASK = "lookout.probes.tasks.probe_batch"
PROBE_TASK = "lookout.probes.tasks.probe_monitor"


# --- the consumer, a process of its own (`schedule.py --consume BROKER OUT`) ------------------------------------


def consume(broker_url: str, out: str) -> None:
    from kombu import Connection, Consumer, Exchange, Queue

    arrivals, dues, monitors, messages = array.array("d"), array.array("d"), array.array("q"), array.array("d")
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    nan = float("nan")

    def on_message(body, message) -> None:
        now = time.time()
        messages.append(now)
        headers = message.headers or {}
        if headers.get("task") == BATCH_TASK:
            for monitor_id, _, due in body[1]["runs"]:
                arrivals.append(now)
                dues.append(due)
                monitors.append(monitor_id)
            return
        due = headers.get(DUE_AT_HEADER)
        arrivals.append(now)
        dues.append(float(due) if due is not None else nan)
        monitors.append(int(body[0][0]))

    # As Celery declares a routed queue: direct exchange and routing key named after it, durable.
    queue = Queue("probes", Exchange("probes", "direct"), routing_key="probes")
    with Connection(broker_url) as connection:
        with Consumer(connection, [queue], callbacks=[on_message], no_ack=True, accept=["json"]) as consumer:
            consumer.qos(prefetch_count=2000)
            Path(out + ".ready").touch()
            while not stopping:
                try:
                    connection.drain_events(timeout=0.2)
                except TimeoutError:
                    pass
    with open(out, "wb") as file:
        pickle.dump((arrivals, dues, monitors, messages, common.proc_cpu_seconds(os.getpid())), file)


class Recorder:
    def __init__(self, broker_url: str, workdir: str, label: str) -> None:
        self.out = os.path.join(workdir, f"runs-{label}.pickle")
        self.process = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--consume", broker_url,
                                         self.out])
        deadline = time.time() + 30
        while not os.path.exists(self.out + ".ready"):
            if time.time() > deadline or self.process.poll() is not None:
                raise SystemExit("the consumer did not connect to RabbitMQ")
            time.sleep(0.05)

    def stop(self) -> tuple:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(60)
        with open(self.out, "rb") as file:
            return pickle.load(file)


# --- database ----------------------------------------------------------------------------------------------------


def db_connect(dsn: str):
    import psycopg

    return psycopg.connect(dsn.replace("postgres://", "postgresql://"), autocommit=True)


def rows_seed(dsn: str, *, count: int, interval: int, first_due: float) -> None:
    """`count` probe schedules every `interval` s, first runs spread evenly over one interval from `first_due`."""
    with db_connect(dsn) as db:
        # No change trigger (1M NOTIFYs of rows no beat reads yet): the beat started next reads everything anyway.
        db.execute("SET session_replication_role = replica")
        every = db.execute("INSERT INTO django_celery_beat_intervalschedule (every, period) "
                           "VALUES (%s, 'seconds') RETURNING id", (interval,)).fetchone()[0]
        # last_run_at one interval before the due time: both schedulers send an interval entry at last_run_at +
        # interval. Monitor n (1..count) is due at first_due + (n - 1) * interval / count.
        db.execute(
            "INSERT INTO django_celery_beat_periodictask (name, task, interval_id, args, kwargs, queue, enabled, "
            "one_off, total_run_count, date_changed, description, headers, expire_seconds, last_run_at) "
            "SELECT 'monitor:' || n, %s, %s, '[' || n || ']', '{}', 'probes', true, false, 0, now(), '', '{}', %s, "
            "to_timestamp(%s + (n - 1) * %s::float8) FROM generate_series(1, %s) AS n",
            (PROBE_TASK, every, interval, first_due - interval, interval / count, count))
        db.execute("ANALYZE django_celery_beat_periodictask")
        db.execute("INSERT INTO django_celery_beat_periodictasks (ident, last_update) VALUES (1, now()) "
                   "ON CONFLICT (ident) DO UPDATE SET last_update = now()")


def rows_drop(dsn: str) -> None:
    with db_connect(dsn) as db:
        db.execute("SET session_replication_role = replica")
        db.execute("DELETE FROM django_celery_beat_periodictask")
        db.execute("VACUUM django_celery_beat_periodictask")


def backends_cpu(dsn: str, dbname: str) -> float:
    """CPU seconds of the PostgreSQL backends connected to the run's database (not this one's own)."""
    with db_connect(dsn) as db:
        pids = [row[0] for row in db.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s "
                                             "AND pid <> pg_backend_pid()", (dbname,)).fetchall()]
    total = 0.0
    for pid in pids:
        try:
            total += common.proc_cpu_seconds(pid)
        except OSError:
            pass
    return total


def schedule_change(dsn: str, monitor_number: int) -> float:
    """The monitor's schedule to interval 1 s, saved as the monitor services save it; the commit's time."""
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    every, _ = IntervalSchedule.objects.get_or_create(every=1, period=IntervalSchedule.SECONDS)
    task = PeriodicTask.objects.get(name=f"monitor:{monitor_number}")
    task.interval = every
    task.expire_seconds = 1
    task.save(update_fields=["interval", "expire_seconds"])
    return time.time()


# --- one scheduler -----------------------------------------------------------------------------------------------


def run_scheduler(label: str, *, count: int, env: dict, workdir: str, dbname: str, interval: int, seconds: float,
                  lead: float) -> dict:
    dsn = env["DATABASE_URL"]
    rows_drop(dsn)
    recorder = Recorder(env["CELERY_BROKER_URL"], workdir, label)
    seeding = time.time()
    first_due = seeding + lead
    rows_seed(dsn, count=count, interval=interval, first_due=first_due)
    seeded = time.time() - seeding
    log = Path(workdir, f"beat-{label}.log")
    # INFO for Lookout's (one line when it took the lock); the stock scheduler logs every send at INFO.
    level = "INFO" if label == "lookout" else "WARNING"
    beat = stack.process_start([sys.executable, "-m", "celery", "-A", CELERY_APP, "beat", "-S", SCHEDULERS[label],
                                "-l", level, "--pidfile="], env=env, log=log, cwd=workdir)
    result: dict = {"label": label, "count": count, "seeded_s": seeded}
    broker = common.broker_pid()
    try:
        time.sleep(max(0.0, first_due - time.time()))
        if beat.poll() is not None:
            raise SystemExit(f"beat ({label}) exited:\n{stack.log_tail(log, 3000)}")
        cpu_start, pg_start = common.proc_cpu_seconds(beat.pid), backends_cpu(dsn, dbname)
        broker_start = common.proc_cpu_seconds(broker) if broker else None
        result["startup_cpu"] = cpu_start
        window_end = first_due + seconds
        time.sleep(max(0.0, first_due + seconds / 2 - time.time()))
        # A monitor due 3 s ago: its next run is ~interval away under the old schedule, due at once under 1 s.
        changed = 1 + int(((time.time() - 3 - first_due) % interval) * count / interval)
        committed = schedule_change(dsn, changed)
        time.sleep(max(0.0, window_end - time.time()))
        cpu_end, pg_end = common.proc_cpu_seconds(beat.pid), backends_cpu(dsn, dbname)
        result["broker_cpu"] = common.proc_cpu_seconds(broker) - broker_start if broker else None
        result["peak_rss_mib"] = common.proc_peak_rss_mib(beat.pid)
        time.sleep(3)  # the change may show late under a backlog (the stock scheduler)
    finally:
        stack.processes_stop([beat], timeout=15)
        arrivals, dues, monitors, messages, consumer_cpu = recorder.stop()
    read = re.search(r"dispatching \d+ schedules \(read in ([\d.]+)s\)", log.read_text())
    result["read_s"] = float(read.group(1)) if read else None
    result["cpu"] = cpu_end - cpu_start
    result["pg_cpu"] = pg_end - pg_start
    result["consumer_cpu"] = consumer_cpu

    change_arrivals = [at for at, monitor in zip(arrivals, monitors, strict=True) if monitor == changed
                       and at > committed]
    result["change_s"] = min(change_arrivals) - committed if change_arrivals else None
    last_arrival: dict[int, float] = {}
    lags: list[float] = []
    seen: set[tuple[int, float]] = set()
    duplicates = 0
    for at, due, monitor in sorted(zip(arrivals, dues, monitors, strict=True)):
        if monitor == changed and at > committed:
            continue
        if due != due:  # nan: the stock scheduler's message, due reconstructed
            due = last_arrival[monitor] + interval if monitor in last_arrival \
                else first_due + (monitor - 1) * interval / count
        elif (monitor, due) in seen:
            duplicates += 1
        seen.add((monitor, due))
        last_arrival[monitor] = at
        if first_due <= at <= window_end:
            lags.append(at - due)
    unsent = []
    for monitor in range(1, count + 1):
        if monitor == changed:
            continue
        next_due = last_arrival[monitor] + interval if monitor in last_arrival \
            else first_due + (monitor - 1) * interval / count
        if next_due < window_end:
            unsent.append(window_end - next_due)
    result.update(sent=len(lags), rate=len(lags) / seconds, lags=lags, unsent=unsent, duplicates=duplicates,
                  messages=sum(1 for at in messages if first_due <= at <= window_end) / seconds,
                  due_rate=count / interval)
    return result


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "--consume":
        consume(sys.argv[2], sys.argv[3])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("monitors", type=int, nargs="?", default=1000, help="N, Lookout's monitors (default 1000)")
    parser.add_argument("--monitors", type=int, dest="monitors_option", default=None,
                        help="N, as an option (older command lines)")
    parser.add_argument("--interval", type=int, default=60, help="every monitor's interval, seconds (default 60)")
    parser.add_argument("--seconds", type=float, default=30.0, help="measured window per scheduler (default 30)")
    parser.add_argument("--lead", type=float, default=None,
                        help="seconds from seeding to the first due run: seeding and beat's start-up and full read "
                             "(default 8 + 60 per million monitors)")
    parser.add_argument("--stock-monitors", type=int, default=10_000,
                        help="the stock scheduler's monitors, the baseline (default 10000; 0: not run)")
    args = parser.parse_args()
    if args.monitors_option is not None:
        args.monitors = args.monitors_option
    if args.interval < 2 or args.monitors < 10:
        parser.error("--interval must be >= 2 and N >= 10")

    import shutil

    name = f"lookout_bench_schedule_{os.getpid()}"
    workdir = tempfile.mkdtemp(prefix="lookout-bench-")
    results = []
    try:
        database_url = stack.database_create(name)
        broker_url = stack.vhost_create(name, required=True)
        env = common.bench_environment(database_url, broker_url)
        stack.lookout_run(env, "migrate")
        common.django_setup(env)
        print(f"Schedule benchmark: Lookout at {args.monitors} monitors every {args.interval} s (due "
              f"{args.monitors / args.interval:.1f} runs/s), stock at {args.stock_monitors}; window {args.seconds:g} s "
              f"per scheduler; {len(os.sched_getaffinity(0))} CPUs, Python {sys.version.split()[0]}", flush=True)
        runs = [("stock", args.stock_monitors)] if args.stock_monitors else []
        for label, count in [*runs, ("lookout", args.monitors)]:
            lead = args.lead if args.lead is not None else 8 + 60 * count / 1e6
            results.append(run_scheduler(label, count=count, env=env, workdir=workdir, dbname=name,
                                         interval=args.interval, seconds=args.seconds, lead=lead))
            from django.db import connection

            connection.close()
    finally:
        common.run_services_drop(name)
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"{'scheduler':<9} {'N':>8} {'runs/s':>8} {'due/s':>8} {'msgs/s':>7} {'lag p50':>8} {'p99':>7} "
          f"{'max':>7} {'unsent':>7} {'max+uns':>7} {'dup':>4} {'cores':>5} {'µs/run':>6} {'RSS MiB':>7} "
          f"{'read s':>6} {'start CPU':>9} {'change s':>8} {'PG cores':>8} {'MQ cores':>8} {'cons.':>5}")
    for r in results:
        lags, unsent, sent, window = r["lags"], r["unsent"], max(r["sent"], 1), args.seconds
        worst = max([*lags, *unsent]) if lags or unsent else float("nan")
        change = f"{r['change_s']:.2f}" if r["change_s"] is not None else "none"
        read = f"{r['read_s']:.1f}" if r["read_s"] is not None else "n/a"
        broker = f"{r['broker_cpu'] / window:.2f}" if r["broker_cpu"] is not None else "n/a"
        print(f"{r['label']:<9} {r['count']:>8} {r['rate']:>8.1f} {r['due_rate']:>8.1f} {r['messages']:>7.1f} "
              f"{common.percentile(lags, 0.5):>8.3f} {common.percentile(lags, 0.99):>7.3f} "
              f"{max(lags) if lags else float('nan'):>7.3f} {len(unsent):>7} {worst:>7.3f} {r['duplicates']:>4} "
              f"{r['cpu'] / window:>5.2f} {1e6 * r['cpu'] / sent:>6.1f} {r['peak_rss_mib']:>7.1f} {read:>6} "
              f"{r['startup_cpu']:>9.1f} {change:>8} {r['pg_cpu'] / window:>8.3f} {broker:>8} "
              f"{r['consumer_cpu']:>5.1f}")
    by_label = {r["label"]: r for r in results}
    if "stock" in by_label:
        stock, lookout = by_label["stock"], by_label["lookout"]
        print(f"ratio lookout at {lookout['count']} / stock at {stock['count']}: runs/s "
              f"{lookout['rate'] / max(stock['rate'], 1e-9):.1f}x; CPU per run "
              f"{(lookout['cpu'] / max(lookout['sent'], 1)) / max(stock['cpu'] / max(stock['sent'], 1), 1e-9):.3f}x; "
              f"stock sends {stock['rate'] / stock['due_rate']:.0%} of what is due, lookout "
              f"{lookout['rate'] / lookout['due_rate']:.0%}")
    print("(lag in seconds, per run, due to arrival at the consumer; unsent: runs due in the window not sent by its "
          "end; dup: runs received twice; cores: beat's CPU s / window s; PG cores: the run database's backends; "
          "MQ: RabbitMQ's beam.smp; cons.: the consumer's CPU s, whole run; change: commit to the next run; start CPU: "
          "beat's CPU s from its start to the first due run: start-up and full read)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
