"""API benchmark: p50/p99 latency and CPU per request of the monitor list, the lean list, detail, results and
stats endpoints of a real `lookout api` (gunicorn) with N monitors and millions of results, measured with `wrk`;
baseline `/healthz`.

    .venv/bin/python bench/api.py [--monitors 100000] [--results 2000000] [--seconds 5] [--connections 8]
    .venv/bin/python bench/api.py --monitors 1000000 --results 100000000 --seed-only   # then --database NAME

A fresh database (`lookout migrate`: results partitioned by day), seeded in SQL (INSERT ... SELECT
generate_series), then VACUUM ANALYZE:
- N HTTP monitors with their PeriodicTasks, owned by one API user, and the user's kept monitor count;
- --results ProbeResult rows over the last --history-days days (a day if 0), round-robin across all monitors,
  so each daily partition holds every monitor's results; each day is loaded into a table without indexes,
  then attached as that day's partition (its indexes built once, by sorting);
- the monitor in the middle of the id range (the one measured) probed every minute for the last --history-days
  days (43,200 results for 30 days), so its results span many partitions and its stats long windows;
- hourly rollups: up to 100k monitors, of every monitor's settled hours by the rollup task's own code
  (lookout.stats.rollups.rollup_run), as production has them once beat ran it; above (or --rollups measured),
  only the measured monitor's, summed with the stats app's histogram (the rollup task over a million monitors'
  30 days takes hours, and stats read only the measured monitor's rows).

`lookout api --workers` (--workers-per-core x this machine's CPUs, default 1 per CPU, the documented figure)
serves it; for each endpoint wrk runs --seconds on one thread (a Lua script sets `Authorization: Token ...`),
once with one connection (latency of a request alone) and once with --connections keep-alive connections
(under load: requests queue for the workers), and its latency distribution gives p50/p99. During the loaded
run the user+system CPU of gunicorn's processes and of the database's PostgreSQL backends (/proc) is divided by
the requests served: CPU per request, which the other work on a shared machine inflates far less than latency.
The throttle runs as in production (one upsert of its counter row on every request) but with a one-second
window (LOOKOUT_USER_RATE), so it never refuses the benchmark's own load. Baseline of the old path: the
statements the list ran before (count(*) over the owner's monitors; a deep page by OFFSET) against what runs
now (the kept count; the keyset page), timed in this process; the full list against the lean one by wrk.
`--explain` prints EXPLAIN (ANALYZE, BUFFERS) of each endpoint's main query before the run; `--keep` keeps the
database, `--database NAME` measures a kept one without seeding, `--seed-only` seeds and keeps.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
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

LUA = """wrk.headers["Authorization"] = "Token {token}"
wrk.headers["Accept"] = "application/json"
"""
URL = "http://127.0.0.1:9/"


def _insert_like(model, template, computed: dict[str, str], source: str) -> tuple[str, list]:
    """INSERT INTO model's table SELECT ... FROM source: `computed` columns as SQL, the others as template's."""
    from django.db import connection

    columns, values, params = [], [], []
    for field in model._meta.concrete_fields:
        if field.primary_key:
            continue
        columns.append(connection.ops.quote_name(field.column))
        if field.name in computed:
            values.append(computed[field.name])
        else:
            values.append("%s")
            params.append(field.get_db_prep_save(getattr(template, field.attname), connection))
    return (f"INSERT INTO {model._meta.db_table} ({', '.join(columns)}) SELECT {', '.join(values)} FROM {source}",
            params)


def seed_monitors(count: int, *, owner_id: int, interval: int) -> list[int]:
    """N monitors with their (disabled) PeriodicTasks, as monitor_create leaves them, in four statements."""
    from django.db import connection, transaction
    from django_celery_beat.models import IntervalSchedule, PeriodicTask, PeriodicTasks

    from lookout.monitors.models import Monitor, OwnerMonitorCount
    from lookout.scheduling.schedules import PROBE_TASK

    every, _ = IntervalSchedule.objects.get_or_create(every=interval, period=IntervalSchedule.SECONDS)
    task = PeriodicTask(name="", task=PROBE_TASK, queue="probes", interval=every, expire_seconds=interval,
                        enabled=False, args="[]")
    monitor = Monitor(owner_id=owner_id, name="", url=URL, interval=interval, timeout=min(10.0, interval))
    tasks_sql, tasks_params = _insert_like(
        PeriodicTask, task, {"name": "'monitor:bench:' || n", "date_changed": "now()"},
        f"generate_series(1, {int(count)}) AS n")
    monitors_sql, monitors_params = _insert_like(
        Monitor, monitor, {"name": "'bench ' || split_part(t.name, ':', 3)", "periodic_task": "t.id",
                           "created_at": "now()", "updated_at": "now()"},
        f"{PeriodicTask._meta.db_table} AS t WHERE t.name LIKE 'monitor:bench:%%' ORDER BY t.id")
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(tasks_sql, tasks_params)
        cursor.execute(monitors_sql, monitors_params)
        cursor.execute(f"UPDATE {PeriodicTask._meta.db_table} AS t SET name = 'monitor:' || m.id, "
                       f"args = '[' || m.id || ']' FROM {Monitor._meta.db_table} AS m WHERE m.periodic_task_id = t.id")
        # update() and raw SQL bypass the signals that tell beat the schedule changed.
        PeriodicTasks.update_changed()
        # What monitor_create keeps per owner (and the migration fills from existing monitors).
        cursor.execute(f"INSERT INTO {OwnerMonitorCount._meta.db_table} (owner_id, monitors) "
                       f"SELECT owner_id, count(*) FROM {Monitor._meta.db_table} WHERE owner_id = %s GROUP BY owner_id "
                       f"ON CONFLICT (owner_id) DO UPDATE SET monitors = EXCLUDED.monitors", [owner_id])
    return list(Monitor.objects.filter(owner_id=owner_id).order_by("id").values_list("id", flat=True))


RESULT_COLUMNS = ("monitor_id, checked_at, success, status_code, response_time_ms, error, task_id, phases, tls, "
                  "failed_condition, region")
# Result i: a failure every 50th, latency 20-116 ms.
RESULT_VALUES = ("(i % 50) <> 0, CASE WHEN (i % 50) <> 0 THEN 200 ELSE 503 END, 20 + (i % 97), "
                 "CASE WHEN (i % 50) <> 0 THEN '' ELSE 'HTTP 503' END, '', "
                 "'{\"dns\": 0.1, \"connect\": 0.5, \"processing\": 15.0, \"transfer\": 0.2}'::jsonb, "
                 "NULL::jsonb, '', ''")


def seed_results(count: int, ids: list[int], *, days: int) -> None:
    """Result i: monitor i mod N, checked i/count of the way back over the last `days` days.

    Day by day into a table of its own without indexes, then attached as that day's partition: ATTACH builds the
    partition's indexes by sorting once, instead of updating three indexes per inserted row (at 100M rows the
    difference between tens of minutes and hours). Today's and the next days' partitions, made by the migration,
    are empty here: replaced the same way."""
    from datetime import UTC, datetime, timedelta

    from django.db import connection

    from lookout.monitors.partitions import TABLE, partition_days, partition_name

    low, monitors = min(ids), len(ids)
    span = 86400 * days
    existing = partition_days()
    with connection.cursor() as cursor:
        cursor.execute("SELECT now()")
        now = cursor.fetchone()[0]
        day = (now - timedelta(seconds=span)).date()
        while day <= now.date():
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            end = start + timedelta(days=1)
            # i of the rows in [start, end): checked = now - i * span / count
            first = max(0, int((now - end).total_seconds() * count / span) - 1)
            last = min(count - 1, int((now - start).total_seconds() * count / span) + 1)
            name = partition_name(day)
            if day in existing:
                cursor.execute(f'ALTER TABLE "{TABLE}" DETACH PARTITION "{name}"')
                cursor.execute(f'DROP TABLE "{name}"')
            cursor.execute(f'CREATE TABLE "{name}" (LIKE "{TABLE}" INCLUDING DEFAULTS INCLUDING CONSTRAINTS)')
            if first <= last:
                cursor.execute(
                    f'INSERT INTO "{name}" ({RESULT_COLUMNS}) SELECT * FROM ('
                    f"SELECT {low} + (i % {monitors}), "
                    # The same `now` for every day: now() would move on with each day's statement, and the rows
                    # at each day's edges would fall outside both days (0.5 % of 100M were lost so).
                    f"'{now.isoformat()}'::timestamptz - (i::float8 * {span} / {count}) * interval '1 second' AS at, "
                    f"{RESULT_VALUES} FROM generate_series({first}, {last}) AS i) AS r "
                    f"WHERE at >= '{start.isoformat()}' AND at < '{end.isoformat()}'")
            cursor.execute(f'ALTER TABLE "{TABLE}" ATTACH PARTITION "{name}" '
                           f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')")
            print(f"  results of {day}: attached", flush=True)
            day += timedelta(days=1)


def seed_history(monitor_id: int, *, days: int) -> int:
    """One monitor probed every minute for `days` days; returns the rows."""
    from django.db import connection

    rows = days * 1440
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO monitors_proberesult ({RESULT_COLUMNS}) "
            f"SELECT {monitor_id}, date_trunc('minute', now()) - i * interval '1 minute' + interval '7 seconds', "
            f"{RESULT_VALUES} FROM generate_series(1, {rows}) AS i")
    return rows


def seed_rollups_of(monitor_id: int, *, days: int) -> int:
    """Hourly rollups of one monitor's settled hours, summed here with the stats app's own histogram: at 1M
    monitors the rollup task over every monitor's 30 days would take hours (target 5 is another helper's), and
    the stats endpoint reads only the measured monitor's rows (by the (monitor, hour, region) key)."""
    from collections import defaultdict
    from datetime import timedelta

    from django.utils import timezone

    from lookout.monitors.models import ProbeResult
    from lookout.stats import partitions
    from lookout.stats.buckets import BUCKET_FIELDS, histogram
    from lookout.stats.models import ResultRollup, RollupProgress
    from lookout.stats.rollups import SETTLE, day_rollup, hour_floor

    end = hour_floor(timezone.now() - SETTLE)
    hours: dict = defaultdict(list)
    for at, region, success, ms in (ProbeResult.objects.filter(
            monitor_id=monitor_id, checked_at__gte=end - timedelta(days=days + 1), checked_at__lt=end)
            .order_by().values_list("checked_at", "region", "success", "response_time_ms").iterator()):
        hours[(hour_floor(at), region)].append((success, ms))
    rows = []
    for (hour, region), results in hours.items():
        latencies = [ms for success, ms in results if success]
        buckets = {field: count or None for field, count in zip(BUCKET_FIELDS, histogram(latencies), strict=True)}
        rows.append(ResultRollup(monitor_id=monitor_id, hour=hour, region=region, checks=len(results),
                                 failures=len(results) - len(latencies), latency_count=len(latencies),
                                 latency_sum_ms=sum(latencies), **buckets))
    first = (end - timedelta(days=days + 1)).date()
    partitions.partitions_ensure(first=first, last=end.date())
    ResultRollup.objects.bulk_create(rows, batch_size=1000)
    # And the daily level, as the rollup task sums it from the hours (the stats of long windows read it).
    day = first
    while day < end.date():
        day_rollup(day)
        day += timedelta(days=1)
    RollupProgress.objects.update_or_create(pk=1, defaults={"rolled_until": end})
    return len(rows)


def _sql_ms(sql: str, params: list, *, runs: int = 7) -> float:
    """Median wall time of a statement in this process (warm: the first run is not counted)."""
    from statistics import median

    from django.db import connection

    times = []
    with connection.cursor() as cursor:
        for _ in range(runs + 1):
            started = time.perf_counter()
            cursor.execute(sql, params)
            cursor.fetchall()
            times.append((time.perf_counter() - started) * 1000)
    return median(times[1:])


def old_paths(owner_id: int, monitors: int, page: int = 50) -> list[tuple[str, float, float]]:
    """The statements the old path ran and the new one runs instead, timed in this process (median of 7):
    the list's count(*) over the owner's monitors vs the kept count, and a deep page by OFFSET (page numbers,
    still served for ?page=N) vs by keyset (a cursor)."""
    from lookout.monitors.models import Monitor, OwnerMonitorCount

    table, counts = Monitor._meta.db_table, OwnerMonitorCount._meta.db_table
    deep = max(0, monitors - page)
    edge = list(Monitor.objects.filter(owner_id=owner_id).order_by("id").values_list("id", flat=True)[
        max(0, deep - 1):deep]) or [0]
    return [
        ("list count", _sql_ms(f"SELECT count(*) FROM {table} WHERE owner_id = %s", [owner_id]),
         _sql_ms(f"SELECT monitors FROM {counts} WHERE owner_id = %s", [owner_id])),
        ("last page's ids", _sql_ms(f"SELECT id FROM {table} WHERE owner_id = %s ORDER BY id LIMIT %s OFFSET %s",
                                    [owner_id, page, deep]),
         _sql_ms(f"SELECT id FROM {table} WHERE owner_id = %s AND id > %s ORDER BY id LIMIT %s",
                 [owner_id, edge[0], page])),
    ]


def explain(token_user_id: int, monitor_id: int) -> None:
    """EXPLAIN (ANALYZE, BUFFERS) of each endpoint's main query, as the API builds it."""
    from datetime import timedelta

    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.utils import timezone

    from lookout.monitors import selectors
    from lookout.stats.models import ResultRollup

    owner = get_user_model().objects.get(pk=token_user_id)
    now = timezone.now()
    monitors = selectors.monitor_list(owner=owner)
    results = selectors.result_list(owner=owner)
    one = selectors.result_list(owner=owner, monitor_id=monitor_id)
    page = 50
    queries = {
        "monitor list count (old path)": monitors.order_by(),
        "monitor list page 1": monitors[:page],
        "monitor summary page 1": selectors.monitor_summaries(owner=owner)[:page + 1],
        "results of one, page 1 (old: every partition)": one[:page + 1],
        # What the pagination asks first (lookout.api.pagination.KeysetPagination._windowed): within a day.
        "results of one, page 1": one.filter(checked_at__gte=now - timedelta(days=1))[:page + 1],
        "results, all, page 1": results.filter(checked_at__gte=now - timedelta(days=1))[:page + 1],
        "stats 30d rollups": ResultRollup.objects.filter(monitor_id=monitor_id, hour__gte=now - timedelta(days=30),
                                                         hour__lt=now).order_by().values_list(
            "checks", "failures", "latency_count", "latency_sum_ms", "latency_buckets"),
    }
    for label, queryset in queries.items():
        sql, params = queryset.query.sql_with_params()
        if "count" in label:
            sql = f"SELECT count(*) FROM ({sql}) AS q"
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", params)
            plan = "\n".join(f"    {row[0]}" for row in cursor.fetchall())
        print(f"-- {label}\n{plan}", flush=True)


def descendants(pid: int) -> list[int]:
    """pid and its children's children (gunicorn's arbiter and workers), from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    parent = int(stat.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            parents.setdefault(parent, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo += parents.get(current, [])
    return found


def backends(database: str) -> list[int]:
    """The PostgreSQL backends connected to the run's database (the API workers' connections)."""
    import psycopg

    with psycopg.connect(stack.ADMIN_DSN, autocommit=True) as conn:
        return [row[0] for row in conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", [database])]


def cpu_of(pids: list[int]) -> dict[int, float]:
    seconds = {}
    for pid in pids:
        try:
            seconds[pid] = common.proc_cpu_seconds(pid)
        except OSError:
            pass  # ended meanwhile
    return seconds


def wrk_cpu(url: str, script: str, *, seconds: float, connections: int, api_pid: int, database: str) -> dict:
    """wrk's figures, and the CPU the API's processes and its PostgreSQL backends spent per request meanwhile."""
    api_before, db_before = cpu_of(descendants(api_pid)), cpu_of(backends(database))
    figures = wrk(url, script, seconds=seconds, connections=connections)
    api_after, db_after = cpu_of(descendants(api_pid)), cpu_of(backends(database))
    requests = figures["rps"] * seconds or float("nan")
    figures["api_cpu_ms"] = sum(cpu - api_before.get(pid, 0.0) for pid, cpu in api_after.items()) * 1000 / requests
    figures["db_cpu_ms"] = sum(cpu - db_before.get(pid, 0.0) for pid, cpu in db_after.items()) * 1000 / requests
    return figures


def wrk(url: str, script: str, *, seconds: float, connections: int) -> dict:
    # --timeout: wrk drops (and leaves out of its distribution) requests slower than its default 2 s; a loaded
    # shared machine sees such requests, and they must count.
    done = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "30s", "--latency",
                           "-s", script, url],
                          capture_output=True, text=True, timeout=seconds + 60)
    if done.returncode != 0:
        raise SystemExit(f"wrk failed:\n{done.stdout}\n{done.stderr}")
    out = done.stdout

    def duration(text: str) -> float:
        value, unit = re.fullmatch(r"([0-9.]+)(us|ms|s|m)", text).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]

    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", out, re.M))
    rps = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)$", out, re.M)
    if "50" not in latency or "99" not in latency or rps is None:  # no request completed (a stalled server)
        print(f"wrk printed no latency distribution:\n{out}", flush=True)
        return {"p50": float("nan"), "p99": float("nan"), "rps": 0.0, "non2xx": 0, "socket_errors": "no figures"}
    return {"p50": duration(latency["50"]), "p99": duration(latency["99"]), "rps": float(rps.group(1)),
            "non2xx": int(errors.group(1)) if errors else 0, "socket_errors": socket_errors.group(1) if socket_errors
            else ""}


def seed(args, owner) -> dict:
    """A fresh database's monitors, results and rollups (see the module's docstring); what was seeded."""
    from django.db import connection

    from lookout.stats.rollups import rollup_run

    timings = {}
    started = time.perf_counter()
    ids = seed_monitors(args.monitors, owner_id=owner.pk, interval=60)
    timings["monitors"] = time.perf_counter() - started
    middle = ids[len(ids) // 2]
    step = time.perf_counter()
    days = max(1, args.history_days)
    seed_results(args.results, ids, days=days)
    history = seed_history(middle, days=args.history_days) if args.history_days else 0
    timings["results"] = time.perf_counter() - step
    step = time.perf_counter()
    rollups = args.rollups or ("all" if args.monitors <= 100_000 else "measured")
    if rollups == "all":
        hours = rollup_run(max_hours=24 * (args.history_days + 2))
    else:
        seed_rollups_of(middle, days=days)
        hours = 0
    timings["rollups"] = time.perf_counter() - step
    step = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")  # as autovacuum would have: visibility map for index-only scans
    timings["vacuum"] = time.perf_counter() - step
    timings["total"] = time.perf_counter() - started
    return {"history": history, "days": days, "hours": hours, "rollups": rollups, "timings": timings}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--monitors", type=int, default=100_000, help="monitors of the API user (default 100000)")
    parser.add_argument("--results", type=int, default=2_000_000,
                        help="results over --history-days days, all monitors (default 2000000)")
    parser.add_argument("--history-days", type=int, default=30,
                        help="days of one-a-minute results of the measured monitor (default 30)")
    parser.add_argument("--seconds", type=float, default=5.0, help="wrk duration per endpoint (default 5)")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections under load (default 8)")
    parser.add_argument("--workers-per-core", type=float, default=1.0,
                        help="gunicorn workers per CPU of this machine, as docs recommend (default 1)")
    parser.add_argument("--rollups", choices=["all", "measured"], default=None,
                        help="all: the rollup task over every monitor; measured: the measured monitor's only "
                             "(default: all up to 100k monitors, measured above)")
    parser.add_argument("--explain", action="store_true", help="print the main queries' plans first")
    parser.add_argument("--keep", action="store_true", help="keep the database (its name is printed)")
    parser.add_argument("--database", help="measure a database kept by --keep instead of seeding a new one")
    parser.add_argument("--seed-only", action="store_true", help="seed, keep the database, measure nothing")
    args = parser.parse_args()
    args.keep = args.keep or args.seed_only  # a seed interrupted half-way is kept too (drop it by hand)
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install -y wrk", file=sys.stderr)
        return 2

    import requests

    name = args.database or f"lookout_bench_api_{os.getpid()}"
    workdir = tempfile.mkdtemp(prefix="lookout-bench-")
    api = None
    rows = []
    cpus = len(os.sched_getaffinity(0))
    workers = max(1, round(cpus * args.workers_per_core))
    try:
        database_url = stack.database_create(name) if not args.database else \
            f"postgres://postgres@127.0.0.1:5432/{name}"
        # The API publishes only check-now probes, which this benchmark does not call: no vhost of its own.
        env = common.bench_environment(database_url, f"{stack.BROKER_URL}//", LOOKOUT_USER_RATE="1000000/second")
        stack.lookout_run(env, "migrate")
        if not args.database:
            stack.lookout_run(env, "manage", "createapiuser", "bench")
        common.django_setup(env)
        from django.contrib.auth import get_user_model
        from django.db import connection

        from lookout.accounts.services import api_token_create
        from lookout.monitors.models import Monitor

        owner = get_user_model().objects.get(username="bench")
        token = api_token_create(owner=owner, name=f"bench {os.getpid()}").key
        if args.database:
            seeded = {"history": args.history_days * 1440, "days": max(1, args.history_days), "hours": 0,
                      "rollups": "as kept", "timings": {}}
        else:
            seeded = seed(args, owner)
        if args.seed_only:
            print(f"seeded: {seeded['timings']}", flush=True)
            return 0
        ids = list(Monitor.objects.filter(owner=owner).order_by("id").values_list("id", flat=True))
        middle = ids[len(ids) // 2]
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM stats_resultrollup")
            rollup_rows = cursor.fetchone()[0]
            cursor.execute("SELECT pg_database_size(current_database())")
            size_gb = cursor.fetchone()[0] / 1e9
        if args.explain:
            explain(owner.pk, middle)
        baseline_sql = old_paths(owner.pk, len(ids))
        from django.db import connections

        from lookout.api.pagination import cursor_encode

        connections.close_all()
        port = stack.free_port()
        log = Path(workdir, "api.log")
        api = stack.process_start([*stack.LOOKOUT, "api", "--bind", f"127.0.0.1:{port}", "--workers", str(workers)],
                                  env=env, log=log, cwd=workdir)
        base = f"http://127.0.0.1:{port}"
        stack.process_wait_http(api, f"{base}/readyz", log=log, timeout=60, what="the API")
        script = os.path.join(workdir, "auth.lua")
        with open(script, "w") as file:
            file.write(LUA.format(token=token))
        headers = {"Authorization": f"Token {token}"}

        def follow(path: str, pages: int) -> str:
            """The path `pages` `next` links on (or the last page's): a cursor deep into the results."""
            for _ in range(pages):
                link = requests.get(base + path, headers=headers, timeout=60).json()["next"]
                if link is None:
                    break
                path = link[len(base):]
            return path

        last_page = -(-len(ids) // 50)
        # The cursor a walk by `next` links reaches on the summary's last page (made, not walked: 20,000 pages).
        deep_cursor = cursor_encode(ids[max(0, (last_page - 1) * 50 - 1)]) if last_page > 1 else ""
        endpoints = [("healthz (baseline)", "/healthz"),
                     ("monitor list", "/api/v1/monitors/"),
                     (f"monitor list, p.{last_page}", f"/api/v1/monitors/?page={last_page}"),
                     ("summary", "/api/v1/monitors/summary/"),
                     ("summary, last page", f"/api/v1/monitors/summary/?cursor={deep_cursor}"),
                     ("monitor detail", f"/api/v1/monitors/{middle}/"),
                     ("results of one", f"/api/v1/results/?monitor={middle}"),
                     ("results of one, p.200", follow(f"/api/v1/results/?monitor={middle}", 200)),
                     ("results, all", "/api/v1/results/"),
                     ("results, all, p.200", follow("/api/v1/results/", 200)),
                     ("stats 24h", f"/api/v1/monitors/{middle}/stats/?window=24h"),
                     ("stats 7d", f"/api/v1/monitors/{middle}/stats/?window=7d"),
                     ("stats 30d", f"/api/v1/monitors/{middle}/stats/?window=30d")]
        timings = seeded["timings"]
        seeding = (f"seeded in {timings['total']:.0f} s (monitors {timings['monitors']:.0f} s, results "
                   f"{timings['results']:.0f} s, rollups ({seeded['rollups']}) {timings['rollups']:.0f} s, "
                   f"VACUUM ANALYZE {timings['vacuum']:.0f} s)" if timings else "kept database")
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT count(*) FROM monitors_proberesult")
            results = cursor.fetchone()[0]
        connections.close_all()
        print(f"API benchmark: {len(ids)} monitors, {results} results ({seeded['history']} of the measured monitor "
              f"over {args.history_days} d), {rollup_rows} hourly rollups; database {size_gb:.1f} GB; {seeding}; "
              f"gunicorn --workers {workers} ({args.workers_per_core:g} per CPU) x {env.get('LOOKOUT_API_THREADS', 4)}"
              f" threads, wrk -t1 -c1 and -c{args.connections}, -d{args.seconds:g}s each per endpoint, "
              f"{cpus} CPUs, load average {os.getloadavg()[0]:.1f}, Python {sys.version.split()[0]}", flush=True)
        for label, path in endpoints:
            probe = requests.get(base + path, headers=headers, timeout=60)
            if probe.status_code != 200:
                print(f"  {label}: {path} answers {probe.status_code}, skipped")
                continue
            alone = wrk_cpu(base + path, script, seconds=args.seconds, connections=1, api_pid=api.pid, database=name)
            loaded = wrk_cpu(base + path, script, seconds=args.seconds, connections=args.connections, api_pid=api.pid,
                             database=name)
            rows.append((label, path, len(probe.content), alone, loaded))
            print(f"  {label}: p99 {alone['p99']:.1f} ms alone, {loaded['p99']:.1f} ms at -c{args.connections}",
                  flush=True)
    finally:
        if api is not None:
            stack.processes_stop([api], timeout=20)
        if args.keep or args.database:
            print(f"kept database {name}")
        else:
            common.run_services_drop(name, vhost=False)
        shutil.rmtree(workdir, ignore_errors=True)

    c = args.connections
    print(f"{'':<23} {'':>7} {'one connection':^26} {f'{c} connections':^35} {'CPU ms/request':^15}")
    print(f"{'endpoint':<23} {'bytes':>7} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8} {'p50 ms':>8} "
          f"{'p99 ms':>8} {'/healthz':>9} {'api':>7} {'pg':>7} {'non-2xx':>7}  path")
    baseline = rows[0][4]["p99"] if rows and rows[0][0].startswith("healthz") else float("nan")
    by_label = {row[0]: row for row in rows}
    for label, path, size, alone, loaded in rows:
        errors = " ".join(f"socket errors: {r['socket_errors']}" for r in (alone, loaded) if r["socket_errors"])
        shown = path if len(path) <= 60 else path[:57] + "..."
        print(f"{label:<23} {size:>7} {alone['rps']:>8.0f} {alone['p50']:>8.2f} {alone['p99']:>8.2f} "
              f"{loaded['rps']:>8.0f} {loaded['p50']:>8.2f} {loaded['p99']:>8.2f} {loaded['p99'] / baseline:>8.1f}x "
              f"{loaded['api_cpu_ms']:>7.2f} {loaded['db_cpu_ms']:>7.2f} "
              f"{alone['non2xx'] + loaded['non2xx']:>7}  {shown} {errors}")
    print(f"(wrk's closed loops: with {c} connections latencies include queueing for the {workers} gunicorn workers; "
          f"/healthz: p99 with {c} connections over /healthz's in the same run; CPU ms/request: user+system CPU of "
          f"gunicorn's processes and of the database's PostgreSQL backends during the -c{c} run, per request)")
    pairs = [("monitor list", "summary"), (f"monitor list, p.{last_page}", "summary, last page")]
    for old, new in pairs:
        if old in by_label and new in by_label:
            o, n = by_label[old], by_label[new]
            print(f"lean over full ({new} / {old}): p99 at -c{c} {n[4]['p99']:.1f} / {o[4]['p99']:.1f} ms = "
                  f"{n[4]['p99'] / o[4]['p99']:.2f}, p99 alone {n[3]['p99'] / o[3]['p99']:.2f}, "
                  f"bytes {n[2] / o[2]:.2f}")
    print("old path vs new, the statement alone in this process (median of 7, warm):")
    for label, before, after in baseline_sql:
        print(f"  {label:<16} old {before:8.2f} ms  new {after:8.2f} ms  ratio {after / before if before else 0:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
