"""Recording benchmark: a worker's batches of probe results stored by `probe_results_record`, old path against new.

    .venv/bin/python bench/recording.py [--results 200000] [--monitors 10000] [--batch 500] [--failures 0.5]
                                        [--paths old,new] [--profile] [--breakdown] [--schema-before]

Each path runs in a process of its own, on a fresh database of its own (migrated, `--monitors` monitors seeded,
failure_threshold 1 so that one failure confirms an outage): `--results` results, round-robin over the monitors (one
round a minute, as a 60 s interval), recorded in batches of `--batch` consecutive results, each batch one call of
the path's `probe_results_record` in its own transaction, as a worker's result batcher calls it. `--failures` % of
the results fail: each opens an incident (down) and its monitor's next result closes it (up), so about twice that
share of the results changes a monitor's state and goes through incidents.

- old: bench/_recording_baseline.py, results.py as it was before batched recording (commit 2aeac74), on the schema
  of that time (before monitors/0012: every monitor update adds index entries, results have a foreign key);
- new: lookout.probes.results as checked out, on the migrated schema (`--schema-before`: on the old one too).

Figures per path (after one warm-up batch, then VACUUM ANALYZE): rows/s of wall time; PostgreSQL CPU, the
utime+stime of the backend serving this process's connection (/proc/<pg_backend_pid()>/stat; the WAL writer,
checkpointer and autovacuum are not in it); rows per PostgreSQL-core-second (rows / backend CPU-s); Python CPU
per row (this process: Django, psycopg and libpq included); per state change, the extra PostgreSQL and Python CPU
over a run without failures is what `--failures 0` beside it shows. The machine is shared: CPU-seconds are the
figures to compare, wall time is not. WAL bytes per row: the cluster's WAL position before and after (other
databases' writes meanwhile count too).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import random
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [BENCH, os.path.join(os.path.dirname(BENCH), "tests")]

import _common as common  # noqa: E402

from support import stack  # noqa: E402

MODULES = {"old": "_recording_baseline", "new": "lookout.probes.results"}
PHASES = {"dns": 0.4, "connect": 0.3, "processing": 11.2, "transfer": 0.2}


def _records(module: Any, ids: list[int], *, count: int, failures: float, start: datetime,
             seed: int = 18) -> list[tuple[int, Any]]:
    """`count` records round-robin over the monitors, a round a minute; a failing result's monitor recovers at
    its next one (so a failure is never followed by another of the same monitor)."""
    rng = random.Random(seed)
    failing: set[int] = set()
    records = []
    home = "home"
    for n in range(count):
        monitor_id = ids[n % len(ids)]
        rounds, offset = divmod(n, len(ids))
        due = start + timedelta(seconds=60 * rounds + 60 * offset / len(ids))
        fail = monitor_id not in failing and rng.random() * 100 < failures
        if fail:
            failing.add(monitor_id)
        else:
            failing.discard(monitor_id)
        records.append((monitor_id, module.ProbeRecord(
            checked_at=due + timedelta(milliseconds=3), success=not fail, status_code=503 if fail else 200,
            response_time_ms=round(rng.uniform(5, 80), 3), error="HTTP 503" if fail else "",
            task_id=f"{monitor_id}:{uuid.UUID(int=rng.getrandbits(128))}", phases=PHASES, region=home, due=due)))
    return records


def _schema_before_0012() -> None:
    """The schema the old path ran on (main before issue 18's monitors/0012): the failing monitors' partial index on
    last_checked_at (so every result's UPDATE of its monitor changes an indexed column: never in place), no free
    room on the monitors' pages, and the results' foreign key to monitors, checked for every inserted row."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("DROP INDEX monitor_failing_idx")
        cursor.execute("CREATE INDEX monitor_failing_idx ON monitors_monitor (last_checked_at) "
                       "WHERE consecutive_failures > 0 AND enabled")
        cursor.execute("ALTER TABLE monitors_monitor RESET (fillfactor)")
        cursor.execute("ALTER TABLE monitors_proberesult ADD CONSTRAINT "
                       "monitors_proberesult_monitor_id_c3bad37d_fk_monitors_monitor_id FOREIGN KEY (monitor_id) "
                       "REFERENCES monitors_monitor (id) DEFERRABLE INITIALLY DEFERRED")


def _steps_measure(backend: int) -> dict[str, dict[str, float]]:
    """Wrap the new path's statements (lookout.probes.recording) and the commit to add up each one's PostgreSQL and
    Python CPU; the warm-up batch's share is taken off when the timed part starts (see `_warm`)."""
    from django.db.backends.postgresql.base import DatabaseWrapper

    from lookout.probes import recording

    steps: dict[str, dict[str, float]] = {}

    def wrapped(name: str, function: Any) -> Any:
        step = steps.setdefault(name, {"pg": 0.0, "py": 0.0, "pg_warm": 0.0, "py_warm": 0.0})

        def measured(*args: Any, **kwargs: Any) -> Any:
            pg, py = common.proc_cpu_seconds(backend), time.process_time()
            try:
                return function(*args, **kwargs)
            finally:
                step["pg"] += common.proc_cpu_seconds(backend) - pg
                step["py"] += time.process_time() - py
        return measured

    for name in ("monitors_lock", "results_recorded", "results_insert", "monitors_save"):
        setattr(recording, name, wrapped(name, getattr(recording, name)))
    DatabaseWrapper._commit = wrapped("commit", DatabaseWrapper._commit)
    return steps


def _warm(steps: dict[str, dict[str, float]]) -> None:
    for step in steps.values():
        step["pg_warm"], step["py_warm"] = step["pg"], step["py"]


def _wal_lsn() -> int:
    """The cluster's WAL position in bytes: the WAL a path writes (other databases' writes meanwhile count too)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')")
        return int(cursor.fetchone()[0])


def path_run(args: argparse.Namespace, path: str) -> dict[str, Any]:
    """In this (child) process: one path on its own database; returns its figures."""
    name = f"lookout_bench_recording_{path}_{os.getpid()}"
    url = stack.database_create(name)
    try:
        common.django_setup(common.bench_environment(url, "memory://", LOOKOUT_REGIONS="home"))
        from django.core.management import call_command
        from django.db import connection

        from lookout.alerting.models import Incident
        from lookout.monitors.models import Monitor, ProbeResult
        from lookout.monitors.partitions import partitions_ensure

        call_command("migrate", verbosity=0)
        ids = common.seed_monitors(args.monitors, interval=60, url="http://127.0.0.1:9/")
        if path == "old" or args.schema_before:
            _schema_before_0012()
        with connection.cursor() as cursor:
            cursor.execute("VACUUM FULL monitors_monitor")  # seeded on the schema the path runs on: fillfactor applies
        Monitor.objects.update(failure_threshold=1)
        start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=args.results // args.monitors + 2)
        partitions_ensure(now=start)
        module = importlib.import_module(MODULES[path])
        records = _records(module, ids, count=args.results + args.batch, failures=args.failures, start=start)
        batches = [records[n:n + args.batch] for n in range(0, len(records), args.batch)]
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            backend = cursor.fetchone()[0]
        steps = _steps_measure(backend) if args.breakdown and path == "new" else {}
        module.probe_results_record(records=batches[0])  # warm-up: imports, caches
        with connection.cursor() as cursor:
            # Statistics of a day's partition with rows in it, as autovacuum takes them soon after the day's first
            # rows (of a never-analysed partition the planner may read the whole day to look up task ids).
            cursor.execute("VACUUM ANALYZE")
        profiler = None
        if args.profile:
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        _warm(steps)
        wal0 = _wal_lsn()
        pg0, py0, wall0 = common.proc_cpu_seconds(backend), time.process_time(), time.perf_counter()
        for batch in batches[1:]:
            module.probe_results_record(records=batch)
        wall, py = time.perf_counter() - wall0, time.process_time() - py0
        pg = common.proc_cpu_seconds(backend) - pg0
        wal = _wal_lsn() - wal0
        if profiler is not None:
            import pstats

            profiler.disable()
            pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(40)
        rows = len(records) - len(batches[0])
        stored = ProbeResult.objects.count()
        incidents = Incident.objects.count()
        open_incidents = Incident.objects.filter(ended_at__isnull=True).count()
        changes = sum(1 for monitor_id, record in records if not record.success) * 2 - open_incidents
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_size_pretty(pg_database_size(current_database()))")
            size = cursor.fetchone()[0]
        return {"path": path, "rows": rows, "batch": args.batch, "monitors": args.monitors, "wall_s": wall,
                "rows_per_s": rows / wall, "pg_cpu_s": pg, "pg_us_per_row": pg / rows * 1e6,
                "rows_per_pg_core_s": rows / pg if pg else float("inf"), "py_cpu_s": py,
                "py_us_per_row": py / rows * 1e6, "stored": stored, "incidents": incidents,
                "state_changes": changes, "database_size": size, "wal_bytes_per_row": wal / rows,
                "steps": {name: {"pg_us_per_row": (step["pg"] - step["pg_warm"]) / rows * 1e6,
                                 "py_us_per_row": (step["py"] - step["py_warm"]) / rows * 1e6}
                          for name, step in steps.items()}}
    finally:
        common.run_services_drop(name, vhost=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=int, default=200_000)
    parser.add_argument("--monitors", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--failures", type=float, default=0.5, help="%% of results that fail (each: down, then up)")
    parser.add_argument("--paths", default="old,new")
    parser.add_argument("--profile", action="store_true", help="cProfile of the timed part, to stderr")
    parser.add_argument("--schema-before", action="store_true",
                        help="the new path too on the schema before monitors/0012 (the old path always runs on it)")
    parser.add_argument("--breakdown", action="store_true",
                        help="the new path's PostgreSQL and Python CPU per statement (adds a little Python CPU)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(path_run(args, args.child)))
        return
    figures = {}
    for path in args.paths.split(","):
        child = [sys.executable, os.path.abspath(__file__), "--child", path, *sys.argv[1:]]
        done = subprocess.run(child, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"path {path} failed:\n{done.stdout}\n{done.stderr}")
        if args.profile:
            sys.stderr.write(done.stderr)
        figures[path] = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"{args.results} results, {args.monitors} monitors, batches of {args.batch}, {args.failures} % failing"
          + ("; both paths on the schema before monitors/0012" if args.schema_before else
             "; old path on the schema before monitors/0012, new on the current one"))
    print(f"{'path':5} {'rows/s':>9} {'PG us/row':>10} {'rows/PG-core-s':>15} {'Py us/row':>10} {'stored':>8} "
          f"{'incidents':>9} {'changes':>8} {'db size':>8} {'WAL B/row':>9}")
    for path, figure in figures.items():
        print(f"{path:5} {figure['rows_per_s']:9.0f} {figure['pg_us_per_row']:10.1f} "
              f"{figure['rows_per_pg_core_s']:15.0f} {figure['py_us_per_row']:10.1f} {figure['stored']:8d} "
              f"{figure['incidents']:9d} {figure['state_changes']:8d} {figure['database_size']:>8} "
              f"{figure['wal_bytes_per_row']:9.0f}")
    for name, step in figures.get("new", {}).get("steps", {}).items():
        print(f"  new, {name:17} PG {step['pg_us_per_row']:6.1f} us/row, Python {step['py_us_per_row']:6.1f} us/row")
    if "old" in figures and "new" in figures:
        old, new = figures["old"], figures["new"]
        print(f"new/old: rows per PG-core-second x{new['rows_per_pg_core_s'] / old['rows_per_pg_core_s']:.2f}, "
              f"Python CPU per row x{new['py_us_per_row'] / old['py_us_per_row']:.2f} "
              f"(old/new x{old['py_us_per_row'] / new['py_us_per_row']:.2f}), "
              f"rows/s x{new['rows_per_s'] / old['rows_per_s']:.2f}")


if __name__ == "__main__":
    main()
