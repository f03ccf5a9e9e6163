"""Schedule benchmark: a real `celery beat` dispatching N interval monitors to RabbitMQ, Lookout's scheduler
against the stock django-celery-beat DatabaseScheduler at the same N, in the same run.

    .venv/bin/python bench/schedule.py [--monitors 1000] [--interval 60] [--seconds 30] [--lead 8]

One fresh PostgreSQL database and one fresh RabbitMQ vhost for the run; N HTTP monitors with their
PeriodicTask rows (bulk-created with the ORM, then PeriodicTasks.update_changed()), all at --interval, their
first runs spread evenly over one interval starting --lead seconds after beat starts, so the due rate is a
uniform N / interval per second. For each scheduler in turn (stock first, then Lookout's), the schedule is
reset to the same spread and one beat process runs (`python -m celery -A lookout.config.celery_app beat -S
<scheduler>`); a kombu consumer in this process (no Celery worker) records each message on the `probes`
queue: arrival time, monitor id, and the `lookout_due_at` header when the scheduler stamps one.

Measured over the window [first due, first due + --seconds]:
- dispatch rate (messages that arrived in the window per second) against the due rate N / interval;
- schedule lag p50/p99/max = arrival - due. Due time: the `lookout_due_at` header if present, otherwise
  reconstructed as the schedulers compute it (first run: the seeded due time; later runs: the previous
  arrival + interval). Runs still unsent at the end of the window count in "max incl. unsent";
- beat CPU seconds in the window (and per dispatch), peak RSS (VmHWM) of the beat process; RabbitMQ's CPU per
  dispatch (the beam.smp process; it also delivers every message to this script's consumer);
- database work per dispatch: pg_stat_database deltas for the run's database (xact_commit and tup_returned,
  all connections, this process's few included): a proxy, as pg_stat_statements is not installed;
- change propagation: in the middle of the window one monitor sent 2+ s earlier gets interval 1 s via the
  service `monitor_update` (as the API does), so under the new schedule it is due at once; the figure is the
  time from its commit to that monitor's next message (under the old schedule it would come ~interval later).
  The monitor is the most recently sent one, so the pick-up does not wait behind a backlog of runs due earlier.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import sys
import threading
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


class Recorder:
    """Consumes the probes queue with kombu (no ack, no Celery worker) and records every message."""

    def __init__(self, broker_url: str) -> None:
        self.broker_url = broker_url
        self.records: list[tuple[float, float | None, int | None]] = []  # arrival, due header, monitor id
        self.stop_event = threading.Event()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self.thread.start()
        if not self.ready.wait(30):
            raise SystemExit("the consumer did not connect to RabbitMQ")

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(10)

    def _run(self) -> None:

        from kombu import Connection, Consumer, Exchange, Queue

        # As Celery declares a routed queue: direct exchange and routing key named after it, durable.
        queue = Queue("probes", Exchange("probes", "direct"), routing_key="probes")

        def on_message(body, message) -> None:
            now = time.time()
            headers = message.headers or {}
            try:
                monitor_id = int(body[0][0])
            except (TypeError, ValueError, IndexError, KeyError):
                monitor_id = None
            due = headers.get(DUE_AT_HEADER)
            self.records.append((now, float(due) if due is not None else None, monitor_id))

        with Connection(self.broker_url) as connection:
            with Consumer(connection, [queue], callbacks=[on_message], no_ack=True, accept=["json"]) as consumer:
                consumer.qos(prefetch_count=1000)
                self.ready.set()
                while not self.stop_event.is_set():
                    try:
                        connection.drain_events(timeout=0.2)
                    except TimeoutError:
                        pass


def db_counters(dbname: str) -> tuple[int, int]:
    import psycopg

    with psycopg.connect(stack.ADMIN_DSN, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute("SELECT xact_commit + xact_rollback, tup_returned FROM pg_stat_database "
                           "WHERE datname = %s", (dbname,)).fetchone()
    return int(row[0]), int(row[1])


def schedule_reset(ids: list[int], *, interval: int, first_due: float) -> dict[int, float]:
    """Spread the monitors' next runs evenly over [first_due, first_due + interval); returns id -> due."""
    from django.db import connection, transaction
    from django_celery_beat.models import IntervalSchedule, PeriodicTask, PeriodicTasks

    from lookout.monitors.models import Monitor

    every, _ = IntervalSchedule.objects.get_or_create(every=interval, period=IntervalSchedule.SECONDS)
    count = len(ids)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"UPDATE {Monitor._meta.db_table} SET interval = %s, timeout = %s WHERE id = ANY(%s)",
                       [interval, min(10.0, interval), ids])
        # last_run_at = due - interval: both schedulers send an interval entry at last_run_at + interval.
        cursor.execute(
            f"UPDATE {PeriodicTask._meta.db_table} AS t SET interval_id = %s, expire_seconds = %s, "
            f"total_run_count = 0, start_time = NULL, "
            f"last_run_at = to_timestamp(%s + (m.rank * %s::float8 / %s) - %s) "
            f"FROM (SELECT periodic_task_id, row_number() OVER (ORDER BY id) - 1 AS rank "
            f"      FROM {Monitor._meta.db_table} WHERE id = ANY(%s)) AS m WHERE m.periodic_task_id = t.id",
            [every.pk, interval, first_due, interval, count, interval, ids])
        PeriodicTasks.update_changed()
    return {monitor_id: first_due + rank * interval / count for rank, monitor_id in enumerate(sorted(ids))}


def run_scheduler(label: str, scheduler: str, *, env: dict, workdir: str, dbname: str, ids: list[int],
                  interval: int, seconds: float, lead: float) -> dict:
    from lookout.monitors.models import Monitor
    from lookout.monitors.services import monitor_update
    from lookout.monitors.spec import monitor_spec

    recorder = Recorder(env["CELERY_BROKER_URL"])
    recorder.start()
    first_due = time.time() + lead
    initial_due = schedule_reset(ids, interval=interval, first_due=first_due)
    log = Path(workdir, f"beat-{label}.log")
    started = time.time()
    # INFO for Lookout's (one line when it took the lock); the stock scheduler logs every send at INFO.
    level = "INFO" if label == "lookout" else "WARNING"
    beat = stack.process_start([sys.executable, "-m", "celery", "-A", CELERY_APP, "beat", "-S", scheduler,
                                "-l", level, "--pidfile="], env=env, log=log, cwd=workdir)
    result: dict = {"label": label}
    try:
        time.sleep(max(0.0, first_due - time.time()))
        if beat.poll() is not None:
            raise SystemExit(f"beat ({label}) exited:\n{stack.log_tail(log, 3000)}")
        cpu_start, counters_start = common.proc_cpu_seconds(beat.pid), db_counters(dbname)
        broker = common.broker_pid()
        broker_start = common.proc_cpu_seconds(broker) if broker else None
        result["startup_cpu"] = cpu_start
        window_end = first_due + seconds
        # The change: halfway through, a monitor sent ~2 s ago (its next run is ~interval away) gets 1 s.
        time.sleep(max(0.0, first_due + seconds / 2 - time.time()))
        # The monitor sent most recently but at least 2 s ago: under the new interval (1 s) its next run is due
        # at once, so what is measured is the time the scheduler takes to see the change, not the new interval;
        # and, already sent, its pick-up is not hidden behind a dispatch backlog.
        change_at = time.time()
        sent_so_far = [mid for at, _, mid in list(recorder.records) if mid in initial_due and at < change_at - 2]
        changed_id = sent_so_far[-1] if sent_so_far else ids[0]
        arrived_before = sum(1 for _, _, mid in list(recorder.records) if mid == changed_id)
        changed = Monitor.objects.get(pk=changed_id)
        monitor_update(monitor=changed, spec=dataclasses.replace(monitor_spec(changed), interval=1))
        committed = time.time()
        time.sleep(max(0.0, window_end - time.time()))
        cpu_end, counters_end = common.proc_cpu_seconds(beat.pid), db_counters(dbname)
        result["broker_cpu"] = common.proc_cpu_seconds(broker) - broker_start if broker else None
        result["peak_rss_mib"] = common.proc_peak_rss_mib(beat.pid)
        # Give the change up to 20 s more if it has not shown yet (the stock scheduler may be far behind).
        def changed_arrival() -> float | None:
            arrivals = [at for at, _, mid in list(recorder.records) if mid == changed_id and at > committed]
            return min(arrivals) if arrivals else None
        deadline = time.time() + 20
        while changed_arrival() is None and time.time() < deadline and beat.poll() is None:
            time.sleep(0.2)
        arrival = changed_arrival()
        result["change_s"] = (arrival - committed) if arrival is not None else None
        result["change_note"] = "" if arrived_before else " (monitor not yet sent before the change)"
    finally:
        stack.processes_stop([beat], timeout=15)
        recorder.stop()
    read = re.search(r"dispatching \d+ schedules \(read in ([\d.]+)s\)", log.read_text())
    result["read_s"] = float(read.group(1)) if read else None

    records = [r for r in recorder.records if r[2] in initial_due]
    result["cpu"] = cpu_end - cpu_start
    result["xacts"] = counters_end[0] - counters_start[0]
    result["tuples"] = counters_end[1] - counters_start[1]
    # Lag, per monitor in arrival order.
    records.sort()
    last_arrival: dict[int, float] = {}
    lags: list[float] = []
    sent = 0
    header_count = 0
    for arrival, due_header, monitor_id in records:
        if monitor_id == changed_id and arrival > committed:
            continue
        reconstructed = last_arrival[monitor_id] + interval if monitor_id in last_arrival \
            else initial_due[monitor_id]
        last_arrival[monitor_id] = arrival
        if not first_due <= arrival <= window_end:
            continue
        sent += 1
        header_count += due_header is not None
        lags.append(arrival - (due_header if due_header is not None else reconstructed))
    # Runs due in the window but never sent: their lag is at least (window end - due).
    unsent = []
    for monitor_id, due in initial_due.items():
        if monitor_id == changed_id:
            continue
        next_due = last_arrival[monitor_id] + interval if monitor_id in last_arrival else due
        if next_due < window_end:
            unsent.append(window_end - next_due)
    result.update(sent=sent, rate=sent / seconds, lags=lags, unsent=unsent,
                  lag_source="header" if lags and header_count == len(lags) else
                  ("reconstructed" if header_count == 0 else "mixed"),
                  beat_start_to_window=first_due - started, stray=len(recorder.records) - len(records))
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--monitors", type=int, default=1000, help="number of monitors, N (default 1000)")
    parser.add_argument("--interval", type=int, default=60, help="every monitor's interval, seconds (default 60)")
    parser.add_argument("--seconds", type=float, default=30.0, help="measured window per scheduler (default 30)")
    parser.add_argument("--lead", type=float, default=8.0,
                        help="seconds from starting beat to the first due run: beat's start-up (default 8)")
    parser.add_argument("--schedulers", default="stock,lookout",
                        help="which to run, comma-separated, in this order (default stock,lookout)")
    args = parser.parse_args()
    if args.interval < 2 or args.monitors < 10:
        parser.error("--interval must be >= 2 and --monitors >= 10")

    import shutil
    import tempfile

    name = f"lookout_bench_schedule_{os.getpid()}"
    workdir = tempfile.mkdtemp(prefix="lookout-bench-")
    results = []
    try:
        database_url = stack.database_create(name)
        broker_url = stack.vhost_create(name, required=True)  # it counts the queue's messages
        env = common.bench_environment(database_url, broker_url)
        stack.lookout_run(env, "migrate")
        common.django_setup(env)
        seeded = time.perf_counter()
        ids = common.seed_monitors(args.monitors, interval=args.interval, url="http://127.0.0.1:9/")
        seeded = time.perf_counter() - seeded
        print(f"Schedule benchmark: {args.monitors} monitors every {args.interval} s (due rate "
              f"{args.monitors / args.interval:.1f}/s), window {args.seconds:g} s per scheduler, "
              f"{len(os.sched_getaffinity(0))} CPUs, Python {sys.version.split()[0]}; seeded in {seeded:.1f} s",
              flush=True)
        for label in args.schedulers.split(","):
            results.append(run_scheduler(label, SCHEDULERS[label], env=env, workdir=workdir, dbname=name, ids=ids,
                                         interval=args.interval, seconds=args.seconds, lead=args.lead))
            from django.db import connection

            connection.close()
    finally:
        common.run_services_drop(name)
        shutil.rmtree(workdir, ignore_errors=True)

    due_rate = args.monitors / args.interval
    print(f"{'scheduler':<9} {'sent':>6} {'sent/s':>7} {'due/s':>6} {'lag p50':>8} {'p99':>7} {'max':>7} "
          f"{'unsent':>6} {'max incl. unsent':>16} {'CPU s':>6} {'CPU ms/sent':>11} {'broker ms/sent':>14} "
          f"{'RSS MiB':>7} {'xact/sent':>9} {'tup/sent':>8} {'change s':>8}  lag from")
    for r in results:
        lags, unsent, sent = r["lags"], r["unsent"], max(r["sent"], 1)
        worst = max([*lags, *unsent]) if lags or unsent else float("nan")
        change = f"{r['change_s']:.2f}" if r["change_s"] is not None else ">20"
        broker_ms = f"{1000 * r['broker_cpu'] / sent:.3f}" if r["broker_cpu"] is not None else "n/a"
        print(f"{r['label']:<9} {r['sent']:>6} {r['rate']:>7.1f} {due_rate:>6.1f} "
              f"{common.percentile(lags, 0.5):>8.3f} {common.percentile(lags, 0.99):>7.3f} "
              f"{max(lags) if lags else float('nan'):>7.3f} {len(unsent):>6} {worst:>16.3f} {r['cpu']:>6.2f} "
              f"{1000 * r['cpu'] / sent:>11.3f} {broker_ms:>14} {r['peak_rss_mib']:>7.1f} {r['xacts'] / sent:>9.2f} "
              f"{r['tuples'] / sent:>8.1f} {change:>8}  {r['lag_source']}{r['change_note']}")
    by_label = {r["label"]: r for r in results}
    if "stock" in by_label and "lookout" in by_label:
        stock, lookout = by_label["stock"], by_label["lookout"]
        print(f"ratio lookout / stock: dispatch rate {lookout['rate'] / max(stock['rate'], 1e-9):.2f}x; "
              f"lag p99 {common.percentile(lookout['lags'], 0.99):.3f} s vs "
              f"{common.percentile(stock['lags'], 0.99):.3f} s; CPU per dispatch "
              f"{(lookout['cpu'] / max(lookout['sent'], 1)) / max(stock['cpu'] / max(stock['sent'], 1), 1e-9):.2f}x")
    for r in results:
        if r.get("read_s") is not None:
            print(f"{r['label']}: read all schedules in {r['read_s']:.1f} s when it took the lock")
    print("(lag in seconds; unsent: runs due in the window not sent by its end; xact/tup: pg_stat_database deltas "
          "of the run's database per message sent, a proxy for queries; change: monitor_update commit to the "
          "changed monitor's next message)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
