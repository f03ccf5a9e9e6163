"""Per-monitor metrics benchmark: series, bytes, CPU per refresh and per scrape, peak RSS, against the collector of
a baseline revision (default `main`) in the same run on the same rows.

    .venv/bin/python bench/metrics.py [--monitors 1000 100000] [--scrapes 5] [--refreshes 3] [--baseline main]

For each N: a fresh database (`lookout migrate`), N monitors seeded in SQL as probed HTTPS monitors leave them
(up, last check, last duration, 4 phases, a certificate: every default series present, the worst case of the
default set; none opts into more), then
- new, refresh: the real refresher process (`python -m lookout.observability.refresher`, as beat starts it) poked
  --refreshes times; its CPU seconds per refresh (utime + stime from /proc) and peak RSS (VmHWM);
- new, serve: a process serving /metrics as beat does (Django, the metrics port, the snapshot feed) scraped
  --scrapes times with `Accept-Encoding: gzip` as Prometheus scrapes; its CPU per scrape, its RSS idle and peak;
- baseline: the collector of --baseline (`git show <rev>:src/lookout/observability/collector.py`, loaded as a
  module) in a process of its own, reading and rendering gzipped as beat did on each cache expiry (and with it in
  beat's process); its CPU seconds and peak RSS. Ratios new / baseline.
Series are counted from the scraped text (sample lines with a monitor_id), bytes are the gzipped scrape and the
text. Wall times are printed but the machine may be shared: CPU seconds per process are the figures to compare.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
sys.path[:0] = [BENCH, os.path.join(ROOT, "tests")]

import _common as common  # noqa: E402

from support import stack  # noqa: E402

SEED_SQL = """
UPDATE {monitor} SET status = 'up', url = 'https://svc-' || id || '.example.com/health',
       last_checked_at = now() - (id % 60) * interval '1 second', last_response_time_ms = 15 + (id % 97),
       last_phases = '{{"dns": 0.4, "connect": 1.2, "tls": 6.5, "processing": 12.0, "transfer": 0.3}}'::jsonb,
       tls_not_after = now() + (30 + id % 300) * interval '1 day'
"""

SERVE = """
import os, sys, time
from pathlib import Path
import django
django.setup()
from lookout.observability import refresher
from lookout.observability.server import metrics_server_start
refresher._feed = refresher.SnapshotFeed(every=3600, shards=1, directory=Path(sys.argv[1]))
metrics_server_start(port=int(sys.argv[2]), host="127.0.0.1", include_monitors=True, health=lambda: (True, "ok"))
print("ready", flush=True)
time.sleep(86400)
"""

BASELINE = """
import gzip, importlib.util, json, resource, sys, time
import django
django.setup()
spec = importlib.util.spec_from_file_location("baseline_collector", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
before, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
body = module.MonitorCollector(cache_seconds=0).exposition(gzipped=True)
after, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter() - started
text = gzip.decompress(body)
series = sum(1 for line in text.split(b"\\n") if b'monitor_id="' in line)
print(json.dumps({"cpu": after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, "wall": wall,
                  "rss": after.ru_maxrss / 1024, "series": series, "gz": len(body), "text": len(text)}))
"""


def seed(count: int) -> None:
    from django.contrib.auth import get_user_model
    from django.db import connection

    from api import seed_monitors
    from lookout.monitors.models import Monitor

    owner, _ = get_user_model().objects.get_or_create(username="bench")
    seed_monitors(count, owner_id=owner.pk, interval=60)
    with connection.cursor() as cursor:
        cursor.execute(SEED_SQL.format(monitor=Monitor._meta.db_table))
        cursor.execute("ANALYZE")


def proc_rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def refresher_measure(directory: Path, refreshes: int) -> dict[str, float]:
    from lookout.observability.refresher import SnapshotFeed, snapshot_path

    feed = SnapshotFeed(every=3600, shards=1, directory=directory)
    path = snapshot_path(directory, shard=0, of=1)
    cpu, wall = [], []
    try:
        for _ in range(refreshes + 1):  # the first includes the process's start (Django setup): reported apart
            before_mtime = path.stat().st_mtime_ns if path.exists() else 0
            pid_cpu = common.proc_cpu_seconds(feed._child.pid) if feed._child else 0.0
            started = time.perf_counter()
            feed.poke()
            while not path.exists() or path.stat().st_mtime_ns == before_mtime:
                time.sleep(0.01)
            wall.append(time.perf_counter() - started)
            cpu.append(common.proc_cpu_seconds(feed._child.pid) - pid_cpu)
        rss = common.proc_peak_rss_mib(feed._child.pid)
    finally:
        feed.stop()
    return {"start_cpu": cpu[0], "cpu": sum(cpu[1:]) / refreshes, "wall": sum(wall[1:]) / refreshes, "rss": rss}


def serve_measure(directory: Path, env: dict[str, str], scrapes: int) -> dict[str, float]:
    port = stack.free_port()
    server = subprocess.Popen([sys.executable, "-c", SERVE, str(directory), str(port)], env=env,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        idle = proc_rss_mib(server.pid)
        request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers={
            "Accept-Encoding": "gzip", "Authorization": f"Bearer {env['LOOKOUT_METRICS_TOKEN']}"})
        cpu_before, started = common.proc_cpu_seconds(server.pid), time.perf_counter()
        for _ in range(scrapes):
            with urllib.request.urlopen(request, timeout=60) as answer:
                body = answer.read()
        wall = (time.perf_counter() - started) / scrapes
        cpu = (common.proc_cpu_seconds(server.pid) - cpu_before) / scrapes
        text = gzip.decompress(body)
        series = sum(1 for line in text.split(b"\n") if b'monitor_id="' in line)
        return {"cpu": cpu, "wall": wall, "idle": idle, "rss": common.proc_peak_rss_mib(server.pid),
                "series": series, "gz": len(body), "text": len(text)}
    finally:
        server.terminate()
        server.wait(timeout=30)


def baseline_measure(revision: str, env: dict[str, str], workdir: Path) -> dict[str, float]:
    source = workdir / "baseline_collector.py"
    source.write_bytes(subprocess.run(["git", "-C", ROOT, "show", f"{revision}:src/lookout/observability/collector.py"],
                                      check=True, capture_output=True).stdout)
    done = subprocess.run([sys.executable, "-c", BASELINE, str(source)], env=env, check=True, capture_output=True,
                          text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(count: int, args: argparse.Namespace) -> dict[str, object]:
    name = f"lookout_bench_metrics_{os.getpid()}"
    workdir = Path(tempfile.mkdtemp(prefix="lookout-bench-metrics-"))
    try:
        database_url = stack.database_create(name)
        env = common.bench_environment(database_url, f"{stack.BROKER_URL}//",
                                       DJANGO_SETTINGS_MODULE="lookout.config.settings")
        stack.lookout_run(env, "migrate")
        common.django_setup(env)
        started = time.perf_counter()
        seed(count)
        print(f"  seeded {count:,} monitors in {time.perf_counter() - started:.1f}s", flush=True)
        refresh = refresher_measure(workdir, args.refreshes)
        serve = serve_measure(workdir, env, args.scrapes)
        baseline = baseline_measure(args.baseline, env, workdir)
        return {"monitors": count, "refresh": refresh, "serve": serve, "baseline": baseline}
    finally:
        common.run_services_drop(name, vhost=False)


def report(row: dict) -> None:
    count, refresh, serve, baseline = row["monitors"], row["refresh"], row["serve"], row["baseline"]
    print(f"\n{count:,} monitors")
    print(f"  series: new {serve['series']:,} ({serve['series'] / count:.2f}/monitor), baseline "
          f"{baseline['series']:,} ({baseline['series'] / count:.2f}/monitor): "
          f"ratio {serve['series'] / baseline['series']:.3f}")
    print(f"  bytes: new {serve['gz'] / 1e6:.2f} MB gzipped ({serve['text'] / 1e6:.1f} MB text), baseline "
          f"{baseline['gz'] / 1e6:.2f} MB gzipped ({baseline['text'] / 1e6:.1f} MB text)")
    print(f"  refresh (refresher process): {refresh['cpu']:.3f} CPU-s ({refresh['wall']:.2f}s wall), peak RSS "
          f"{refresh['rss']:.0f} MiB; its start (Django setup + first refresh) {refresh['start_cpu']:.2f} CPU-s")
    print(f"  baseline read + render + gzip (in beat's process): {baseline['cpu']:.3f} CPU-s "
          f"({baseline['wall']:.2f}s wall), peak RSS {baseline['rss']:.0f} MiB: "
          f"refresh ratio new/baseline {refresh['cpu'] / baseline['cpu']:.3f}")
    print(f"  scrape (serving process, gzip): {serve['cpu'] * 1000:.1f} ms CPU ({serve['wall'] * 1000:.1f} ms wall); "
          f"RSS idle {serve['idle']:.0f} MiB, peak {serve['rss']:.0f} MiB (+{serve['rss'] - serve['idle']:.0f}); "
          f"CPU in beat's process per refresh: {serve['cpu']:.4f} s vs {baseline['cpu']:.3f} s "
          f"(ratio {serve['cpu'] / baseline['cpu']:.4f})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--monitors", type=int, nargs="+", default=[1000, 100_000])
    parser.add_argument("--scrapes", type=int, default=5)
    parser.add_argument("--refreshes", type=int, default=3)
    parser.add_argument("--baseline", default="main", help="git revision of the baseline collector (default main)")
    args = parser.parse_args()
    print(f"bench/metrics.py: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}", flush=True)
    for count in args.monitors:
        report(run(count, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
