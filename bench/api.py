"""API benchmark: p50/p99 latency of the monitor list, detail, results and stats endpoints of a real
`lookout api` (gunicorn) with N monitors and many results, measured with `wrk`; baseline `/healthz`.

    .venv/bin/python bench/api.py [--monitors 1000] [--results 200000] [--seconds 5] [--connections 8]

A fresh database: N HTTP monitors (bulk-created with their PeriodicTasks) owned by one API user, and
--results ProbeResult rows spread over the last 24 h across all monitors (bulk INSERT ... generate_series),
then ANALYZE. `lookout api --workers 2` serves it; for each endpoint wrk runs --seconds with --connections
keep-alive connections on one thread (a Lua script sets `Authorization: Token ...`) and its latency
distribution gives p50/p99. Endpoints (the detail-style ones on the monitor in the middle of the id range):
/healthz (the baseline: no database, no auth), /api/v1/monitors/, /api/v1/monitors/{id}/,
/api/v1/results/?monitor={id}, /api/v1/results/ (all of the owner's), /api/v1/monitors/{id}/stats/?window=24h.
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common as common  # noqa: E402

LUA = """wrk.headers["Authorization"] = "Token {token}"
wrk.headers["Accept"] = "application/json"
"""


def seed_results(count: int, ids: list[int]) -> None:
    from django.db import connection

    from lookout.monitors.models import ProbeResult

    low, monitors = min(ids), len(ids)
    with connection.cursor() as cursor:
        # Result i belongs to monitor low + i % N, checked i/count of the way back over the last 24 h.
        cursor.execute(
            f"INSERT INTO {ProbeResult._meta.db_table} (monitor_id, checked_at, success, status_code, "
            f"response_time_ms, error, task_id, phases, tls, failed_condition) "
            f"SELECT %s + (i %% %s), now() - (i * interval '86400 seconds' / %s), (i %% 50) <> 0, "
            f"CASE WHEN (i %% 50) <> 0 THEN 200 ELSE 503 END, 20 + (i %% 97), '', '', "
            f"'{{\"dns\": 0.1, \"connect\": 0.5, \"processing\": 15.0, \"transfer\": 0.2}}'::jsonb, NULL, '' "
            f"FROM generate_series(0, %s - 1) AS i", [low, monitors, count, count])
        cursor.execute(f"ANALYZE {ProbeResult._meta.db_table}")


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
    parser.add_argument("--monitors", type=int, default=1000, help="monitors of the API user (default 1000)")
    parser.add_argument("--results", type=int, default=200_000, help="ProbeResult rows (default 200000)")
    parser.add_argument("--seconds", type=float, default=5.0, help="wrk duration per endpoint (default 5)")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections (default 8)")
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
        database_url = common.database_create(name)
        # The API publishes only check-now probes, which this benchmark does not call: no vhost of its own.
        env = common.lookout_environment(database_url, "amqp://guest:guest@127.0.0.1:5672//")
        common.lookout_run(env, "migrate")
        token = common.lookout_run(env, "manage", "createapiuser", "bench").strip().splitlines()[-1]
        common.django_setup(env)
        from django.contrib.auth import get_user_model

        seeding = time.perf_counter()
        ids = common.seed_monitors(args.monitors, interval=60, url="http://127.0.0.1:9/", enabled=False,
                                   owner=get_user_model().objects.get(username="bench"))
        seed_results(args.results, ids)
        seeding = time.perf_counter() - seeding
        from django.db import connections

        connections.close_all()
        port = common.free_port()
        log = open(os.path.join(workdir, "api.log"), "w")  # noqa: SIM115
        api = subprocess.Popen([*common.LOOKOUT, "api", "--bind", f"127.0.0.1:{port}", "--workers", "2"],
                               env=env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"

        def ready() -> bool:
            if api.poll() is not None:
                raise SystemExit(f"api exited:\n{open(log.name).read()[-3000:]}")
            try:
                return requests.get(f"{base}/readyz", timeout=2).status_code == 200
            except requests.RequestException:
                return False

        common.wait_for(ready, timeout=60, what="the API's /readyz")
        script = os.path.join(workdir, "auth.lua")
        with open(script, "w") as file:
            file.write(LUA.format(token=token))
        middle = ids[len(ids) // 2]
        endpoints = [("healthz (baseline)", "/healthz"), ("monitor list", "/api/v1/monitors/"),
                     ("monitor detail", f"/api/v1/monitors/{middle}/"),
                     ("results of one", f"/api/v1/results/?monitor={middle}"),
                     ("results, all", "/api/v1/results/"),
                     ("stats 24h", f"/api/v1/monitors/{middle}/stats/?window=24h")]
        headers = {"Authorization": f"Token {token}"}
        print(f"API benchmark: {args.monitors} monitors, {args.results} results over 24 h (seeded in "
              f"{seeding:.1f} s), gunicorn --workers 2, wrk -t1 -c{args.connections} -d{args.seconds:g}s per "
              f"endpoint, {len(os.sched_getaffinity(0))} CPUs, Python {sys.version.split()[0]}", flush=True)
        for label, path in endpoints:
            probe = requests.get(base + path, headers=headers, timeout=30)
            if probe.status_code != 200:
                print(f"  {label}: {path} answers {probe.status_code}, skipped")
                continue
            rows.append((label, path, len(probe.content), wrk(base + path, script, seconds=args.seconds,
                                                               connections=args.connections)))
    finally:
        if api is not None:
            common.stop(api, timeout=20)
        try:
            from django.db import connections

            connections.close_all()
        except Exception:
            pass
        common.database_drop(name)
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"{'endpoint':<19} {'bytes':>7} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'p99 / healthz':>13} "
          f"{'non-2xx':>7}  path")
    baseline = rows[0][3]["p99"] if rows and rows[0][0].startswith("healthz") else float("nan")
    for label, path, size, r in rows:
        errors = f"  socket errors: {r['socket_errors']}" if r["socket_errors"] else ""
        print(f"{label:<19} {size:>7} {r['rps']:>8.0f} {r['p50']:>8.2f} {r['p99']:>8.2f} "
              f"{r['p99'] / baseline:>12.1f}x {r['non2xx']:>7}  {path}{errors}")
    print(f"(latencies under wrk's closed loop of {args.connections} connections: they include queueing for the "
          "2 gunicorn workers; ratio: p99 over /healthz's p99 in the same run)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
