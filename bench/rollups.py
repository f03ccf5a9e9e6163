"""Rollups benchmark: one hour of N monitors' results rolled up by main's ORM path (baseline, vendored below) and
by the set-based SQL of lookout.stats.rollups, in the same run on the same data; the daily level, the late-result
check, and the stats selector's latency over 1 / 30 / 400 days.

    .venv/bin/python bench/rollups.py [--monitors 100000] [--no-baseline] [--percentile-cont] [--keep]

A fresh database (`lookout migrate`), seeded in SQL (INSERT ... SELECT generate_series, not the ORM):
- N monitors (push monitors: no schedule rows, nothing probes them; the rollups ignore the type);
- one result per monitor and minute over one UTC hour (today 00:00-01:00, the day's partition), in time order
  as recording writes them: 60 x N rows, a failure every 50th, latency log-normal around 55 ms (a few
  buckets per monitor-hour, as real targets have), realistic other columns (task id, phases). The results'
  indexes but the primary key are built after the load (monitor+time, time; not the task-id index: the
  rollup never uses it),
  then VACUUM ANALYZE, as autovacuum leaves an insert-only table.

Measured (wall time, and CPU of this process and of its PostgreSQL backend from /proc: parallel workers' CPU
is not in the backend's figure, and the machine is shared, so wall times vary with the neighbours' load):
- baseline: main's hours_rollup (one grouped ORM query with 49 filtered counts, rows built in Python,
  bulk_create ... update_conflicts in batches of 2,000), writing to a table of main's shape;
- new: lookout.stats.rollups.hours_rollup of the hour, then again (the idempotent re-run: same rows);
- late_hours over that hour (the count check each rollup run makes per recent hour), and day_rollup (the day's
  daily rows from its hourly ones: here one hour per monitor, a real day has 24);
- optionally percentile_cont(0.5, 0.95, 0.99) per monitor over the hour, the exact alternative to the histogram;
- stats: for a sample of monitors, hourly rollups for the last 92 days and daily ones for 400 days are added,
  then window_tally + downtime (what the stats endpoint computes) over 1, 30 and 400 days, p50/p99.
The database is dropped at the end (unless --keep).
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import sys
import time
from datetime import UTC, datetime, timedelta

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [BENCH, os.path.join(os.path.dirname(BENCH), "tests")]

import _common as common  # noqa: E402

from support import stack  # noqa: E402

NAME = "lookout_bench_rollups"


def self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Timer:
    """Wall time, this process's CPU and the PostgreSQL backend's CPU of a block."""

    def __init__(self, backend_pid: int) -> None:
        self.backend_pid = backend_pid

    def __enter__(self) -> Timer:
        self.wall, self.cpu, self.db = time.perf_counter(), self_cpu(), common.proc_cpu_seconds(self.backend_pid)
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = self_cpu() - self.cpu
        self.db = common.proc_cpu_seconds(self.backend_pid) - self.db

    def __str__(self) -> str:
        return f"{self.wall:8.2f} s wall, {self.db:7.2f} s PostgreSQL backend CPU, {self.cpu:7.2f} s Python CPU"


def seed_monitors(count: int) -> list[int]:
    from django.contrib.auth import get_user_model
    from django.db import connection

    from lookout.monitors.models import Monitor

    owner, _ = get_user_model().objects.get_or_create(username="bench")
    # Push monitors: no schedule row is needed (nothing probes them); the rollups do not look at the type.
    template = Monitor.objects.create(owner=owner, name="bench 0", type="push", url="", interval=60,
                                      timeout=10.0)
    columns = [field.column for field in Monitor._meta.concrete_fields if field.column not in ("id", "name")]
    table = Monitor._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f'INSERT INTO "{table}" (name, {", ".join(columns)}) '
                       f"SELECT 'bench ' || n, {', '.join(columns)} FROM \"{table}\", generate_series(1, %s) n "
                       f"WHERE id = %s", [count - 1, template.pk])
    return list(Monitor.objects.order_by("id").values_list("id", flat=True))


def seed_hour(hour: datetime, count: int) -> None:
    """One result per monitor and minute of the hour, minute by minute; then the indexes, VACUUM ANALYZE."""
    from django.conf import settings
    from django.db import connection

    table = "monitors_proberesult"
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s AND indexname NOT LIKE "
                       "'%%pkey'", [table])
        indexes = cursor.fetchall()
        for name, _ in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
        for minute in range(60):
            started = time.perf_counter()
            # Latency: log-normal (Box-Muller), median e^4 = 55 ms; every 50th probe fails (a 10 s timeout).
            cursor.execute(f"""
                INSERT INTO "{table}" (monitor_id, checked_at, success, status_code, response_time_ms, error,
                                       task_id, phases, tls, failed_condition, region)
                SELECT m.id, %(at)s + (m.id %% 60) * interval '1 second', ok, CASE WHEN ok THEN 200 END,
                       CASE WHEN ok THEN exp(4 + 0.6 * sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random()))
                            ELSE 10000 END,
                       CASE WHEN ok THEN '' ELSE 'timed out' END, md5(m.id::text || %(at)s::text),
                       '{{"dns": 1.2, "connect": 3.4, "tls": 5.6, "processing": 40.1, "transfer": 0.4}}'::jsonb,
                       NULL, '', %(region)s
                FROM (SELECT id, (id + %(minute)s) %% 50 <> 0 AS ok FROM monitors_monitor) m""",
                           {"at": hour + timedelta(minutes=minute), "minute": minute,
                            "region": settings.LOOKOUT_HOME_REGION})
            if minute % 10 == 9:
                print(f"  results: minute {minute + 1}/60 ({count:,} rows in {time.perf_counter() - started:.1f} s)",
                      flush=True)
        started = time.perf_counter()
        for _, definition in indexes:
            if "task_id" not in definition:
                cursor.execute(definition.replace(" ON ONLY ", " ON "))  # the partitions too
        print(f"  indexes: {time.perf_counter() - started:.1f} s", flush=True)
    connection.ensure_connection()
    with connection.cursor() as cursor:
        started = time.perf_counter()
        cursor.execute(f'VACUUM ANALYZE "{table}"')
        cursor.execute(f"SELECT pg_size_pretty(pg_total_relation_size('{table}_p{hour:%Y%m%d}'))")
        print(f"  vacuum analyze: {time.perf_counter() - started:.1f} s; the day's partition: "
              f"{cursor.fetchone()[0]}", flush=True)


# --- main's rollup path (lookout/stats/rollups.py hours_rollup and _rollups_write at 2aeac74), vendored: the
# baseline. Only the model differs: a table of main's shape (latency_buckets a JSON list), created by the bench.
def baseline_model():  # type: ignore[no-untyped-def]
    from django.db import connection, models

    from lookout.monitors.models import Monitor

    class BaselineRollup(models.Model):  # noqa: DJ008  (never printed)
        monitor = models.ForeignKey(Monitor, on_delete=models.CASCADE, related_name="+")
        hour = models.DateTimeField()
        region = models.CharField(max_length=32, blank=True, default="")
        checks = models.PositiveIntegerField()
        failures = models.PositiveIntegerField()
        latency_count = models.PositiveIntegerField()
        latency_sum_ms = models.FloatField()
        latency_buckets = models.JSONField()

        class Meta:
            app_label = "stats"
            db_table = "bench_baseline_rollup"
            constraints = [models.UniqueConstraint(fields=["monitor", "hour", "region"], name="bench_baseline_once")]
            indexes = [models.Index(fields=["hour"], name="bench_baseline_hour")]

    with connection.schema_editor() as editor:
        editor.create_model(BaselineRollup)
    return BaselineRollup


def baseline_hours_rollup(model, *, start: datetime, end: datetime) -> int:  # type: ignore[no-untyped-def]
    from django.db.models import Count, Q, Sum
    from django.db.models.functions import TruncHour

    from lookout.monitors.models import ProbeResult
    from lookout.stats.buckets import EDGES_MS

    at_most = {f"le{index}": Count("id", filter=Q(success=True, response_time_ms__lte=edge))
               for index, edge in enumerate(EDGES_MS)}
    groups = (ProbeResult.objects.filter(checked_at__gte=start, checked_at__lt=end).order_by()
              .annotate(hour=TruncHour("checked_at", tzinfo=UTC)).values("monitor_id", "hour", "region")
              .annotate(checks=Count("id"), failures=Count("id", filter=Q(success=False)),
                        latency_count=Count("id", filter=Q(success=True)),
                        latency_sum=Sum("response_time_ms", filter=Q(success=True)), **at_most))
    written, batch = 0, []
    for group in groups.iterator(chunk_size=2000):
        cumulative = [group[f"le{index}"] for index in range(len(EDGES_MS))] + [group["latency_count"]]
        buckets = [cumulative[0]] + [cumulative[i] - cumulative[i - 1] for i in range(1, len(cumulative))]
        batch.append(model(monitor_id=group["monitor_id"], hour=group["hour"], region=group["region"],
                           checks=group["checks"], failures=group["failures"],
                           latency_count=group["latency_count"], latency_sum_ms=group["latency_sum"] or 0.0,
                           latency_buckets=buckets))
        if len(batch) == 2000:
            written += baseline_write(model, batch)
            batch = []
    return written + baseline_write(model, batch)


def baseline_write(model, rows) -> int:  # type: ignore[no-untyped-def]
    from lookout.monitors.models import Monitor

    if not rows:
        return 0
    alive = set(Monitor.objects.filter(pk__in={row.monitor_id for row in rows}).values_list("pk", flat=True))
    rows = [row for row in rows if row.monitor_id in alive]
    model.objects.bulk_create(rows, update_conflicts=True, unique_fields=["monitor", "hour", "region"],
                              update_fields=["checks", "failures", "latency_count", "latency_sum_ms",
                                             "latency_buckets"])
    return len(rows)
# --- end of main's path


def compare(model, hour: datetime) -> int:  # type: ignore[no-untyped-def]
    """Rows where the new rollup differs from main's (counts, sum, buckets): 0 expected."""
    from lookout.stats.models import ResultRollup

    old = {(row.monitor_id, row.region): row for row in model.objects.filter(hour=hour)}
    differ = 0
    for row in ResultRollup.objects.filter(hour=hour).iterator(chunk_size=10000):
        before = old.pop((row.monitor_id, row.region), None)
        if before is None or (before.checks, before.failures, before.latency_count, before.latency_buckets) != (
                row.checks, row.failures, row.latency_count, row.latency_buckets) or abs(
                before.latency_sum_ms - row.latency_sum_ms) > 1e-6 * max(1.0, row.latency_sum_ms):
            differ += 1
    return differ + len(old)


def seed_history(sample: list[int], now: datetime) -> None:
    """For the sample: hourly rollups of the last 92 days, daily ones of 400 days (each a day's worth of checks)."""
    from django.db import connection

    from lookout.stats import partitions
    from lookout.stats.models import RollupProgress
    from lookout.stats.rollups import COUNTS, day_floor, hour_floor

    today = day_floor(now)
    partitions.partitions_ensure(first=(today - timedelta(days=400)).date(), last=today.date())
    buckets = ", ".join(["NULL"] * 16 + ["40", "15", "3", "1"] + ["NULL"] * 29)  # 50-60 ms mostly
    with connection.cursor() as cursor:
        cursor.execute(f"""
            INSERT INTO stats_resultrollup (monitor_id, hour, region, {", ".join(COUNTS)})
            SELECT m, h, '', 60, 1, 59, 3245.0, {buckets}
            FROM unnest(%(sample)s::int[]) m,
                 generate_series(%(first)s::timestamptz, %(last)s::timestamptz, interval '1 hour') h
            ON CONFLICT DO NOTHING""",
                       {"sample": sample, "first": today - timedelta(days=92),
                        "last": hour_floor(now) - timedelta(hours=1)})
        daily = ", ".join(["NULL"] * 16 + ["960", "360", "72", "24"] + ["NULL"] * 29)
        cursor.execute(f"""
            INSERT INTO stats_dailyrollup (monitor_id, day, region, {", ".join(COUNTS)})
            SELECT m, d::date, '', 1440, 24, 1416, 77880.0, {daily}
            FROM unnest(%(sample)s::int[]) m, generate_series(%(first)s::date, %(last)s::date, interval '1 day') d
            ON CONFLICT DO NOTHING""",
                       {"sample": sample, "first": (today - timedelta(days=400)).date(),
                        "last": (today - timedelta(days=1)).date()})
        cursor.execute("ANALYZE stats_resultrollup")
        cursor.execute("ANALYZE stats_dailyrollup")
    RollupProgress.objects.update_or_create(pk=1, defaults={"rolled_until": hour_floor(now)})


def stats_latency(sample: list[int], now: datetime, *, rounds: int) -> dict[str, tuple[float, float, int]]:
    from lookout.monitors.models import Monitor
    from lookout.stats.selectors import downtime, window_tally

    monitors = list(Monitor.objects.filter(pk__in=sample))
    figures = {}
    for label, days in (("1 day", 1), ("30 days", 30), ("400 days", 400)):
        timings, checks = [], 0
        for round_ in range(rounds):
            monitor = monitors[round_ % len(monitors)]
            started = time.perf_counter()
            tally = window_tally(monitor=monitor, start=now - timedelta(days=days), now=now)
            downtime(monitor=monitor, start=now - timedelta(days=days), now=now)
            timings.append((time.perf_counter() - started) * 1000)
            checks = tally.checks
        figures[label] = (common.percentile(timings, 0.5), common.percentile(timings, 0.99), checks)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--monitors", type=int, default=100_000)
    parser.add_argument("--no-baseline", action="store_true", help="skip main's path (slow at 1M)")
    parser.add_argument("--percentile-cont", action="store_true", help="also time percentile_cont over the hour")
    parser.add_argument("--sample", type=int, default=50, help="monitors given 400 days of rollups")
    parser.add_argument("--rounds", type=int, default=400, help="stats calls per range")
    parser.add_argument("--keep", action="store_true", help="keep the database")
    parser.add_argument("--reuse", action="store_true",
                        help="the database of an earlier run (--keep, or stopped by SIGTERM) seeded today: no seeding")
    parser.add_argument("--no-rollup", action="store_true", help="skip the hourly rollups (done by that run)")
    args = parser.parse_args()

    try:
        database_url = f"postgres://postgres@127.0.0.1:5432/{NAME}" if args.reuse else stack.database_create(NAME)
        env = common.bench_environment(database_url, f"{stack.BROKER_URL}//")
        if not args.reuse:
            stack.lookout_run(env, "migrate")
        common.django_setup(env)
        from django.db import connection

        from lookout.stats.models import DailyRollup, ResultRollup
        from lookout.stats.rollups import day_floor, day_rollup, hours_rollup, late_hours

        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid(), version()")
            backend, version = cursor.fetchone()
        print(f"{args.monitors:,} monitors x 60 results (one hour); {os.cpu_count()} CPUs; {version.split(',')[0]}")
        now = datetime.now(UTC)
        hour = day_floor(now)  # today 00:00: today's partition exists (made by migrate)
        started = time.perf_counter()
        if args.reuse:
            from lookout.monitors.models import Monitor

            ids = list(Monitor.objects.order_by("id").values_list("id", flat=True))
        else:
            ids = seed_monitors(args.monitors)
            seed_hour(hour, len(ids))
            print(f"seeded {len(ids) * 60:,} results in {time.perf_counter() - started:.0f} s", flush=True)

        figures = {}
        for label in () if args.no_rollup else ("new (SQL)", "new, re-run"):
            with Timer(backend) as timer:
                rows = hours_rollup(start=hour, end=hour + timedelta(hours=1))
            figures[label] = timer
            print(f"{label + ':':<28} {timer}  ({rows:,} rows)", flush=True)
        if not (args.no_baseline or args.no_rollup):  # after the new path: at 1M it takes minutes
            model = baseline_model()
            with Timer(backend) as timer:
                rows = baseline_hours_rollup(model, start=hour, end=hour + timedelta(hours=1))
            figures["baseline"] = timer
            print(f"baseline (main's ORM path):  {timer}  ({rows:,} rows)", flush=True)
        if "baseline" in figures and "new (SQL)" in figures:
            print(f"rows differing from main's: {compare(model, hour)}; speed-up (wall) "
                  f"{figures['baseline'].wall / figures['new (SQL)'].wall:.1f}x", flush=True)
        with Timer(backend) as timer:
            late = late_hours(until=hour + timedelta(hours=1), hours=1)
        print(f"late check (one hour):       {timer}  (late hours: {late})", flush=True)
        with Timer(backend) as timer:
            rows = day_rollup(hour.date())
        print(f"daily level (1 hour/monitor): {timer}  ({rows:,} rows)", flush=True)
        if args.percentile_cont:
            with Timer(backend) as timer, connection.cursor() as cursor:
                cursor.execute("SET work_mem = '1GB'")
                cursor.execute("CREATE TEMPORARY TABLE exact AS SELECT monitor_id, percentile_cont(ARRAY[0.5, 0.95, "
                               "0.99]) WITHIN GROUP (ORDER BY response_time_ms) FROM monitors_proberesult "
                               "WHERE success AND checked_at >= %s AND checked_at < %s GROUP BY monitor_id",
                               [hour, hour + timedelta(hours=1)])
            print(f"percentile_cont (exact):     {timer}", flush=True)

        sample = random.Random(18).sample(ids, min(args.sample, len(ids)))
        seed_history(sample, now)
        print(f"rows: {ResultRollup.objects.count():,} hourly, {DailyRollup.objects.count():,} daily "
              f"({len(sample)} monitors with 92 days hourly, 400 days daily)", flush=True)
        stats_latency(sample, now, rounds=20)  # warm-up
        for label, (p50, p99, checks) in stats_latency(sample, now, rounds=args.rounds).items():
            print(f"stats over {label:<9} p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  ({checks:,} checks)", flush=True)
    finally:
        if not args.keep:
            common.run_services_drop(NAME, vhost=False)


if __name__ == "__main__":
    main()
