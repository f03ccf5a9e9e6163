"""API benchmark: p50/p99 latency of the monitor list, detail, results and stats endpoints of a real
`lookout api` (gunicorn) with N monitors and millions of results, measured with `wrk`; baseline `/healthz`.

    .venv/bin/python bench/api.py [--monitors 100000] [--results 2000000] [--seconds 5] [--connections 8]

A fresh database (`lookout migrate`: results partitioned by day), seeded in SQL (INSERT ... SELECT
generate_series), then ANALYZE:
- N HTTP monitors with their PeriodicTasks, owned by one API user;
- --results ProbeResult rows over the last --history-days days (a day if 0), round-robin across all monitors,
  so each daily partition holds every monitor's results;
- the monitor in the middle of the id range (the one measured) probed every minute for the last --history-days
  days (43,200 results for 30 days), so its results span many partitions and its stats long windows;
- hourly rollups of every settled hour, by the rollup task's own code (lookout.stats.rollups.rollup_run), as
  production has them once beat ran it: stats read rollups, and raw results only for a window's edges.

`lookout api --workers 2` serves it; for each endpoint wrk runs --seconds on one thread (a Lua script sets
`Authorization: Token ...`), once with one connection (latency of a request alone) and once with
--connections keep-alive connections (under load: requests queue for the 2 workers), and its latency
distribution gives p50/p99. The throttle runs as in production (one upsert of its counter row on every
request) but with a one-second window (LOOKOUT_USER_RATE), so it never refuses the benchmark's own load.
`--explain` prints EXPLAIN (ANALYZE, BUFFERS) of each endpoint's main query before the run.
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

    from lookout.monitors.models import Monitor
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
    return list(Monitor.objects.filter(owner_id=owner_id).order_by("id").values_list("id", flat=True))


RESULT_COLUMNS = ("monitor_id, checked_at, success, status_code, response_time_ms, error, task_id, phases, tls, "
                  "failed_condition")
# Result i: a failure every 50th, latency 20-116 ms.
RESULT_VALUES = ("(i % 50) <> 0, CASE WHEN (i % 50) <> 0 THEN 200 ELSE 503 END, 20 + (i % 97), "
                 "CASE WHEN (i % 50) <> 0 THEN '' ELSE 'HTTP 503' END, '', "
                 "'{\"dns\": 0.1, \"connect\": 0.5, \"processing\": 15.0, \"transfer\": 0.2}'::jsonb, NULL, ''")


def seed_results(count: int, ids: list[int], *, days: int) -> None:
    """Result i: monitor i mod N, checked i/count of the way back over the last `days` days."""
    from django.db import connection

    low, monitors = min(ids), len(ids)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO monitors_proberesult ({RESULT_COLUMNS}) "
            f"SELECT {low} + (i % {monitors}), now() - (i * interval '{86400 * days} seconds' / {count}), "
            f"{RESULT_VALUES} FROM generate_series(0, {count} - 1) AS i")


def partitions_past(days: int) -> None:
    """A fresh database has partitions from today on: the past days' ones, as the maintenance task made them."""
    from datetime import timedelta

    from django.utils import timezone

    from lookout.monitors.partitions import partition_create, partition_days

    today, existing = timezone.now().date(), partition_days()
    for day in (today - timedelta(days=n) for n in range(1, days + 2)):
        if day not in existing:
            partition_create(day)


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
        "monitor list count": monitors.order_by(),
        "monitor list page 1": monitors[:page],
        "results of one, page 1": one[:page + 1],
        "results, all, page 1": results[:page + 1],
        "stats 30d rollups": ResultRollup.objects.filter(monitor_id=monitor_id, hour__gte=now - timedelta(days=30),
                                                         hour__lt=now).order_by().values_list(
            "checks", "failures", "latency_count", "latency_sum_ms", "latency_buckets"),
    }
    for label, queryset in queries.items():
        sql, params = queryset.query.sql_with_params()
        if label.endswith("count"):
            sql = f"SELECT count(*) FROM ({sql}) AS q"
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", params)
            plan = "\n".join(f"    {row[0]}" for row in cursor.fetchall())
        print(f"-- {label}\n{plan}", flush=True)


def wrk(url: str, script: str, *, seconds: float, connections: int) -> dict:
    done = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", "-s", script, url],
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
    return {"p50": duration(latency["50"]), "p99": duration(latency["99"]), "rps": float(rps.group(1)),
            "non2xx": int(errors.group(1)) if errors else 0, "socket_errors": socket_errors.group(1) if socket_errors
            else ""}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--monitors", type=int, default=100_000, help="monitors of the API user (default 100000)")
    parser.add_argument("--results", type=int, default=2_000_000,
                        help="results over --history-days days, all monitors (default 2000000)")
    parser.add_argument("--history-days", type=int, default=30,
                        help="days of one-a-minute results of the measured monitor (default 30)")
    parser.add_argument("--seconds", type=float, default=5.0, help="wrk duration per endpoint (default 5)")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections under load (default 8)")
    parser.add_argument("--explain", action="store_true", help="print the main queries' plans first")
    parser.add_argument("--keep", action="store_true", help="keep the database (its name is printed)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install -y wrk", file=sys.stderr)
        return 2

    import requests

    name = f"lookout_bench_api_{os.getpid()}"
    workdir = tempfile.mkdtemp(prefix="lookout-bench-")
    api = None
    rows = []
    try:
        database_url = stack.database_create(name)
        # The API publishes only check-now probes, which this benchmark does not call: no vhost of its own.
        env = common.bench_environment(database_url, f"{stack.BROKER_URL}//", LOOKOUT_USER_RATE="1000000/second")
        stack.lookout_run(env, "migrate")
        token = stack.lookout_run(env, "manage", "createapiuser", "bench").strip().splitlines()[-1]
        common.django_setup(env)
        from django.contrib.auth import get_user_model
        from django.db import connection

        from lookout.stats.rollups import rollup_run

        timings = {}
        started = time.perf_counter()
        owner = get_user_model().objects.get(username="bench")
        ids = seed_monitors(args.monitors, owner_id=owner.pk, interval=60)
        timings["monitors"] = time.perf_counter() - started
        middle = ids[len(ids) // 2]
        step = time.perf_counter()
        days = max(1, args.history_days)
        partitions_past(days)
        seed_results(args.results, ids, days=days)
        history = seed_history(middle, days=args.history_days) if args.history_days else 0
        timings["results"] = time.perf_counter() - step
        step = time.perf_counter()
        hours = rollup_run(max_hours=24 * (args.history_days + 2))
        timings["rollups"] = time.perf_counter() - step
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")  # as autovacuum would have: visibility map for index-only scans
            cursor.execute("SELECT count(*) FROM stats_resultrollup")
            rollup_rows = cursor.fetchone()[0]
        seeding = time.perf_counter() - started
        if args.explain:
            explain(owner.pk, middle)
        from django.db import connections

        connections.close_all()
        port = stack.free_port()
        log = Path(workdir, "api.log")
        api = stack.process_start([*stack.LOOKOUT, "api", "--bind", f"127.0.0.1:{port}", "--workers", "2"],
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
        endpoints = [("healthz (baseline)", "/healthz"),
                     ("monitor list", "/api/v1/monitors/"),
                     ("monitor list, last page", f"/api/v1/monitors/?page={last_page}"),
                     ("monitor detail", f"/api/v1/monitors/{middle}/"),
                     ("results of one", f"/api/v1/results/?monitor={middle}"),
                     ("results of one, p.200", follow(f"/api/v1/results/?monitor={middle}", 200)),
                     ("results, all", "/api/v1/results/"),
                     ("results, all, p.200", follow("/api/v1/results/", 200)),
                     ("stats 24h", f"/api/v1/monitors/{middle}/stats/?window=24h"),
                     ("stats 7d", f"/api/v1/monitors/{middle}/stats/?window=7d"),
                     ("stats 30d", f"/api/v1/monitors/{middle}/stats/?window=30d")]
        print(f"API benchmark: {len(ids)} monitors, {args.results + history} results ({args.results} over {days} d, "
              f"{history} of the measured monitor over {args.history_days} d), {rollup_rows} hourly rollups "
              f"({hours} h rolled up); seeded in {seeding:.0f} s (monitors {timings['monitors']:.0f} s, results "
              f"{timings['results']:.0f} s, rollup task {timings['rollups']:.0f} s); gunicorn --workers 2, "
              f"wrk -t1 -c1 and -c{args.connections}, -d{args.seconds:g}s each per endpoint, "
              f"{len(os.sched_getaffinity(0))} CPUs, Python {sys.version.split()[0]}", flush=True)
        for label, path in endpoints:
            probe = requests.get(base + path, headers=headers, timeout=60)
            if probe.status_code != 200:
                print(f"  {label}: {path} answers {probe.status_code}, skipped")
                continue
            alone = wrk(base + path, script, seconds=args.seconds, connections=1)
            loaded = wrk(base + path, script, seconds=args.seconds, connections=args.connections)
            rows.append((label, path, len(probe.content), alone, loaded))
    finally:
        if api is not None:
            stack.processes_stop([api], timeout=20)
        if args.keep:
            print(f"kept database {name}")
        else:
            common.run_services_drop(name, vhost=False)
        shutil.rmtree(workdir, ignore_errors=True)

    c = args.connections
    print(f"{'':<23} {'':>7} {'one connection':^26} {f'{c} connections':^35}")
    print(f"{'endpoint':<23} {'bytes':>7} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8} {'p50 ms':>8} "
          f"{'p99 ms':>8} {'/healthz':>9} {'non-2xx':>7}  path")
    baseline = rows[0][4]["p99"] if rows and rows[0][0].startswith("healthz") else float("nan")
    for label, path, size, alone, loaded in rows:
        errors = " ".join(f"socket errors: {r['socket_errors']}" for r in (alone, loaded) if r["socket_errors"])
        shown = path if len(path) <= 60 else path[:57] + "..."
        print(f"{label:<23} {size:>7} {alone['rps']:>8.0f} {alone['p50']:>8.2f} {alone['p99']:>8.2f} "
              f"{loaded['rps']:>8.0f} {loaded['p50']:>8.2f} {loaded['p99']:>8.2f} {loaded['p99'] / baseline:>8.1f}x "
              f"{alone['non2xx'] + loaded['non2xx']:>7}  {shown} {errors}")
    print(f"(wrk's closed loops: with {c} connections latencies include queueing for the 2 gunicorn workers; "
          f"/healthz: p99 with {c} connections over /healthz's in the same run)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
