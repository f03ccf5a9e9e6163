"""Soak run: N monitors every --interval seconds for --duration, api, worker and beat as real processes; reports
memory, file descriptors and database connections of every process over time, results stored against probes due,
and schedule lag per window. A leak shows as growth: first window against last, and the slope per hour.

    .venv/bin/python bench/soak.py [--duration 30m] [--monitors 1000] [--interval 10] [--sample-every 10]

What runs, all on 127.0.0.1:
- target: an asyncio HTTP server in its own process. `GET /ok` answers 200; `GET /flap` answers 200, except for
  the last --flap-down seconds of every --flap-period (500), so the --failing monitors on it go down and up again
  (incidents, state changes, alert deliveries); `POST /hook` is their webhook channel. `Connection: close`, as a
  monitor's probe opens a new connection each time. It counts what it answered;
- LookoutStack (tests/support/stack.py): `lookout migrate`, a token from `lookout manage createapiuser`, then
  `lookout api` (gunicorn, its default 2 workers), `lookout worker` and `lookout beat` on a database and RabbitMQ
  vhost of the run's own, with the processes' own defaults (worker concurrency 50, database pool 10; the
  stack's test-sized values are put back to those); LOOKOUT_USER_RATE is raised so creating the monitors is not
  throttled;
- the monitors are created through the REST API (POST /api/v1/monitors/, 8 at a time), so every one's schedule
  starts when it was saved, as a user's would; then a light API load every sample (a monitor list page, a
  monitor, its results and its stats), so the API's workers serve requests throughout.

Every --sample-every seconds: VmRSS and the count of /proc/<pid>/fd of each process and of its children
(gunicorn master and workers, the Celery worker and any child, beat), database connections per process
(pg_stat_activity by application_name), result rows (count(*)), the `probes` queue's depth, the worker's and
beat's /metrics. One line per --report-every seconds, then the tables.

Probes due ("expected") come from the schedule: a monitor's PeriodicTask start_time is its first run, then one
every interval (Lookout's scheduler keeps that grid: a run's due time is the previous one's plus the interval).
"sent" is beat's `lookout_beat_dispatches_total{outcome="sent"}` (broker-confirmed), "probed" the target's count of
probe requests, "stored" the ProbeResult rows.

Schedule lag, per --window:
- worker: `lookout_schedule_lag_seconds`, the worker's own histogram of a probe task's start minus the due time
  beat stamped on its message (`lookout_due_at` header): the due time as the scheduler had it, the start as the
  worker had it. Its p99 is read from the buckets' increase over the window, so it is a bucket bound ("<= 0.05");
- results: each stored result's checked_at (when the probe itself started: after the task read its monitor)
  minus its due time on the schedule's grid (start_time + k * interval), exact to the millisecond. It assumes
  the grid was kept, which holds without outages (a catch-up after a gap > interval moves it);
- beat records no dispatch time of its own (it stamps the due time, not the send time): lag up to dispatch is
  not measured apart from the worker's start.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

BENCH = os.path.dirname(os.path.abspath(__file__))
# bench/_common.py, and tests/support/stack.py: the database, vhost, port and process helpers the tests use too.
sys.path[:0] = [BENCH, os.path.join(os.path.dirname(BENCH), "tests")]

import _common as common  # noqa: E402

from support import stack  # noqa: E402

PROBE_TASK = "lookout.probes.tasks.probe_monitor"
ROLES = ("api", "worker", "beat")


# --- the target -----------------------------------------------------------------------------------------------

def role_target(flap_period: float, flap_down: float) -> None:
    import asyncio

    counts: dict[str, int] = defaultdict(int)
    started = time.time()

    def answer(status: int, body: bytes) -> bytes:
        reason = {200: "OK", 404: "Not Found", 500: "Internal Server Error"}[status]
        return (f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
                f"Connection: close\r\n\r\n").encode() + body

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            method, path = head.split(b" ", 2)[:2]
            length = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
            if length:
                await reader.readexactly(int(length.group(1)))
            if path == b"/ok":
                counts["ok"] += 1
                response = answer(200, b"ok")
            elif path == b"/flap":
                down = (time.time() - started) % flap_period >= flap_period - flap_down
                counts["flap_down" if down else "flap_up"] += 1
                response = answer(500, b"broken") if down else answer(200, b"ok")
            elif path == b"/hook" and method == b"POST":
                counts["hook"] += 1
                response = answer(200, b"ok")
            elif path == b"/counts":
                response = answer(200, json.dumps(counts).encode())
            else:
                counts["other"] += 1
                response = answer(404, b"no")
            writer.write(response)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            writer.close()

    async def serve() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=4096)
        print(server.sockets[0].getsockname()[1], flush=True)
        await server.serve_forever()

    asyncio.run(serve())


# --- processes ------------------------------------------------------------------------------------------------

def children_of() -> dict[int, list[int]]:
    children: dict[int, list[int]] = defaultdict(list)
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/stat") as stat:
                ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children[ppid].append(int(entry))
    return children


def process_tree(root: int, children: dict[int, list[int]]) -> list[int]:
    found, todo = [], [root]
    while todo:
        pid = todo.pop(0)
        found.append(pid)
        todo.extend(sorted(children.get(pid, [])))
    return found


def rss_and_threads(pid: int) -> tuple[int, int] | None:
    """(VmRSS in KiB, Threads) from /proc/<pid>/status; None if the process is gone."""
    found: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(("VmRSS:", "Threads:")):
                    found[line.split(":")[0]] = int(line.split()[1])
    except OSError:
        return None
    return (found["VmRSS"], found["Threads"]) if len(found) == 2 else None


def fd_count(pid: int) -> int | None:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def process_label(role: str, pid: int, root: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            args = cmdline.read().split(b"\0")
    except OSError:
        args = []
    if pid == root:
        return {"api": "api master", "worker": "worker", "beat": "beat"}[role]
    kind = "worker" if role == "api" else "child"
    name = os.path.basename(args[0].decode(errors="replace")) if args and args[0] else "?"
    return f"{role} {kind} {pid}" + ("" if "python" in name else f" ({name})")


# --- metrics --------------------------------------------------------------------------------------------------

@dataclass
class Scrape:
    lag_buckets: dict[float, float] = field(default_factory=dict)  # le -> cumulative count
    lag_count: float = 0.0
    probes: dict[str, float] = field(default_factory=dict)  # result -> count
    expired: float = 0.0
    task_failures: float = 0.0
    task_retries: float = 0.0
    dispatches: dict[str, float] = field(default_factory=dict)  # outcome -> count (probe task)


def scrape(lookout: stack.LookoutStack) -> Scrape:
    from prometheus_client.parser import text_string_to_metric_families

    out = Scrape()
    for family in text_string_to_metric_families(lookout.metrics("worker")):
        for sample in family.samples:
            if sample.name == "lookout_schedule_lag_seconds_bucket":
                out.lag_buckets[float(sample.labels["le"])] = sample.value
            elif sample.name == "lookout_schedule_lag_seconds_count":
                out.lag_count = sample.value
            elif sample.name == "lookout_probes_total":
                out.probes[sample.labels["result"]] = out.probes.get(sample.labels["result"], 0) + sample.value
            elif sample.name == "lookout_tasks_expired_total":
                out.expired += sample.value
            elif sample.name == "lookout_task_failures_total":
                out.task_failures += sample.value
            elif sample.name == "lookout_task_retries_total":
                out.task_retries += sample.value
    for family in text_string_to_metric_families(lookout.metrics("beat")):
        for sample in family.samples:
            if sample.name == "lookout_beat_dispatches_total" and sample.labels.get("task") == PROBE_TASK:
                out.dispatches[sample.labels["outcome"]] = sample.value
    return out


def histogram_quantile(start: Scrape, end: Scrape, q: float) -> tuple[float, float]:
    """(upper bucket bound holding the q-quantile of the observations between two scrapes, observations)."""
    total = end.lag_count - start.lag_count
    if total <= 0:
        return float("nan"), 0.0
    for le in sorted(end.lag_buckets):
        if end.lag_buckets[le] - start.lag_buckets.get(le, 0.0) >= q * total:
            return le, total
    return float("inf"), total


# --- the run --------------------------------------------------------------------------------------------------

@dataclass
class Sample:
    at: float  # seconds since the measurement's start
    processes: dict[str, tuple[int, int, float, int]]  # label -> (RSS KiB, fds, CPU seconds, threads)
    connections: dict[str, int]  # role -> database connections
    stored: int
    expected: int
    probed: int
    queue: int | None
    metrics: Scrape
    api_errors: int


def expected_runs(starts: list[float], *, interval: float, now: float) -> int:
    """Runs due by `now` on every monitor's grid (first at its start_time, then every interval)."""
    return sum(int((now - start) // interval) + 1 for start in starts if start <= now)


def target_counts(port: int) -> dict[str, int]:
    import requests

    return requests.get(f"http://127.0.0.1:{port}/counts", timeout=5).json()


class ApiLoad:
    """A few reads per sample (list page, detail, results, stats) so the API's workers serve throughout."""

    def __init__(self, lookout: stack.LookoutStack, ids: list[int]) -> None:
        self.lookout, self.ids = lookout, ids
        self.requests = self.errors = 0
        self.latencies: list[float] = []
        self.error_samples: list[str] = []
        self.turn = 0

    def round(self) -> None:
        monitor_id = self.ids[self.turn % len(self.ids)]
        page = 1 + self.turn % max(1, len(self.ids) // 50)
        self.turn += 1
        for path in (f"monitors/?page={page}", f"monitors/{monitor_id}/", f"results/?monitor={monitor_id}",
                     f"monitors/{monitor_id}/stats/?window=24h"):
            began = time.perf_counter()
            try:
                response = self.lookout.api("GET", path)
                status = response.status_code
            except Exception as exc:  # a refused or timed-out request is a finding, not a crash of the run
                status, response = 0, None
                detail = repr(exc)
            self.latencies.append(time.perf_counter() - began)
            self.requests += 1
            if status != 200:
                self.errors += 1
                if len(self.error_samples) < 5:
                    self.error_samples.append(f"GET {path}: {status} "
                                              + (response.text[:200] if response is not None else detail))


def monitors_create(lookout: stack.LookoutStack, *, count: int, failing: int, interval: int, target: str,
                    channel: int) -> list[int]:
    """POST every monitor through the API, 8 requests at a time; the --failing ones on /flap with the channel."""
    def create(i: int) -> int:
        flapping = i < failing
        body = {"name": f"soak {i}", "url": f"{target}/flap" if flapping else f"{target}/ok", "interval": interval,
                "timeout": min(5, interval), **({"channels": [channel]} if flapping else {})}
        for attempt in range(5):
            response = lookout.api("POST", "monitors/", json=body)
            if response.status_code == 201:
                return response.json()["id"]
            if response.status_code == 429 or response.status_code >= 500:
                time.sleep(float(response.headers.get("Retry-After", 1)) if attempt < 4 else 0)
                continue
            break
        raise SystemExit(f"creating monitor {i} failed: {response.status_code} {response.text[:300]}")

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(create, range(count)))


class Database:
    """One connection of this script's own (application_name lookout-soak) for the samples' queries."""

    def __init__(self, database_url: str, name: str) -> None:
        import psycopg

        self.name = name
        self.conn = psycopg.connect(database_url.replace("postgres://", "postgresql://"), autocommit=True,
                                    application_name="lookout-soak")

    def stored(self) -> int:
        return self.conn.execute("SELECT count(*) FROM monitors_proberesult").fetchone()[0]

    def connections(self) -> dict[str, int]:
        rows = self.conn.execute("SELECT application_name, count(*) FROM pg_stat_activity WHERE datname = %s "
                                 "GROUP BY application_name", (self.name,)).fetchall()
        by_name = dict(rows)
        return {role: by_name.get(f"lookout-{role}", 0) for role in ROLES}

    def starts(self, ids: list[int]) -> list[float]:
        rows = self.conn.execute(
            "SELECT extract(epoch FROM t.start_time)::float8 FROM monitors_monitor AS m "
            "JOIN django_celery_beat_periodictask AS t ON t.id = m.periodic_task_id WHERE m.id = ANY(%s)",
            (ids,)).fetchall()
        return [row[0] for row in rows]

    def lag_windows(self, *, t0: float, window: float) -> list[tuple]:
        """Per window since t0: results, lag p50, p99, max (checked_at minus its due time on the monitor's grid)."""
        return self.conn.execute(
            "WITH r AS (SELECT extract(epoch FROM r.checked_at)::float8 AS at, "
            "  extract(epoch FROM t.start_time)::float8 AS start, m.interval::float8 AS every "
            "  FROM monitors_proberesult AS r JOIN monitors_monitor AS m ON m.id = r.monitor_id "
            "  JOIN django_celery_beat_periodictask AS t ON t.id = m.periodic_task_id "
            "  WHERE r.checked_at >= to_timestamp(%(t0)s)), "
            "l AS (SELECT floor((at - %(t0)s) / %(window)s) AS w, "
            "  at - (start + floor((at - start) / every) * every) AS lag FROM r) "
            "SELECT w, count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY lag), "
            "  percentile_cont(0.99) WITHIN GROUP (ORDER BY lag), max(lag) FROM l GROUP BY w ORDER BY w",
            {"t0": t0, "window": window}).fetchall()

    def alerting(self) -> dict[str, object]:
        incidents = self.conn.execute("SELECT count(*), count(ended_at) FROM alerting_incident").fetchone()
        states = dict(self.conn.execute("SELECT state, count(*) FROM alerting_notification GROUP BY state")
                      .fetchall())
        results = self.conn.execute("SELECT count(*) FILTER (WHERE success), count(*) FILTER (WHERE NOT success) "
                                    "FROM monitors_proberesult").fetchone()
        return {"incidents": incidents[0], "closed": incidents[1], "notifications": states,
                "success": results[0], "failure": results[1]}

    def close(self) -> None:
        self.conn.close()


class Queue:
    """The `probes` queue's depth through a passive declare (None if it cannot be read)."""

    def __init__(self, broker_url: str) -> None:
        from kombu import Connection

        self.connection = Connection(broker_url)

    def depth(self) -> int | None:
        try:
            channel = self.connection.channel()
            try:
                return channel.queue_declare("probes", passive=True)[1]
            finally:
                channel.close()
        except Exception:
            self.connection = self.connection.clone()
            return None

    def close(self) -> None:
        self.connection.release()


def take_sample(lookout: stack.LookoutStack, db: Database, queue: Queue, api_load: ApiLoad, *, t0: float,
                starts: list[float], interval: float, target_port: int) -> Sample:
    lookout.assert_running()
    children = children_of()
    processes: dict[str, tuple[int, int, float, int]] = {}
    for role in ROLES:
        root = lookout.processes[role].pid
        for pid in process_tree(root, children):
            status, fds = rss_and_threads(pid), fd_count(pid)
            try:
                cpu = common.proc_cpu_seconds(pid)
            except OSError:
                continue
            if status is not None and fds is not None:
                processes[process_label(role, pid, root)] = (status[0], fds, cpu, status[1])
    # Read in the order results flow backwards (stored, probed, sent), the schedule last: a probe in flight
    # while they are read makes a count lower than the one after it, never higher.
    stored = db.stored()
    counts = target_counts(target_port)
    metrics = scrape(lookout)
    now = time.time()
    return Sample(at=now - t0, processes=processes, connections=db.connections(), stored=stored,
                  expected=expected_runs(starts, interval=interval, now=now),
                  probed=counts.get("ok", 0) + counts.get("flap_up", 0) + counts.get("flap_down", 0),
                  queue=queue.depth(), metrics=metrics, api_errors=api_load.errors)


def slope_per_hour(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value), per hour."""
    if len(points) < 2:
        return float("nan")
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return float("nan")
    return 3600 * sum((t - mean_t) * (v - mean_v) for t, v in points) / var


def cpu_percent(chosen: list[Sample], label: str) -> float:
    """CPU time over wall time between the first and last of `chosen` that saw the process (100 = one core)."""
    seen = [s for s in chosen if label in s.processes]
    if len(seen) < 2 or seen[-1].at <= seen[0].at:
        return float("nan")
    return 100 * (seen[-1].processes[label][2] - seen[0].processes[label][2]) / (seen[-1].at - seen[0].at)


def mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def log_findings(workdir: Path) -> dict[str, tuple[int, int, int, list[str]]]:
    """Per process log: (lines, ERROR/CRITICAL lines, tracebacks, a few distinct error lines)."""
    findings = {}
    for role in ROLES:
        path = workdir / f"{role}.log"
        lines = errors = tracebacks = 0
        distinct: dict[str, None] = {}
        with open(path, errors="replace") as log:
            for line in log:
                lines += 1
                if "Traceback (most recent call last)" in line:
                    tracebacks += 1
                if re.search(r"\b(ERROR|CRITICAL)\b", line) or ("WARNING" in line and "Traceback" in line):
                    errors += 1
                    key = re.sub(r"\d+", "N", line.split("ERROR", 1)[-1].strip())[:160]
                    if len(distinct) < 5:
                        distinct.setdefault(key)
        findings[role] = (lines, errors, tracebacks, list(distinct))
    return findings


def duration_seconds(text: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([smh]?)", text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r}: a duration such as 30m, 90s or 1h")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=duration_seconds, default=1800.0,
                        help="measured time after the monitors exist, e.g. 30m, 90s (default 30m)")
    parser.add_argument("--monitors", type=int, default=1000, help="number of HTTP monitors (default 1000)")
    parser.add_argument("--interval", type=int, default=10, help="every monitor's interval, seconds (default 10)")
    parser.add_argument("--sample-every", type=float, default=10.0, help="seconds between samples (default 10)")
    parser.add_argument("--report-every", type=float, default=60.0, help="seconds between report lines (default 60)")
    parser.add_argument("--window", type=duration_seconds, default=300.0,
                        help="window for the lag percentiles and first/last comparisons (default 5m)")
    parser.add_argument("--failing", type=int, default=20,
                        help="monitors on the flapping endpoint, with a webhook channel (default 20)")
    parser.add_argument("--flap-period", type=float, default=120.0,
                        help="the flapping endpoint's cycle, seconds (default 120)")
    parser.add_argument("--flap-down", type=float, default=40.0,
                        help="seconds of each cycle it answers 500 (default 40)")
    parser.add_argument("--samples-out", metavar="PATH", default=None, help="write every sample as JSON lines")
    parser.add_argument("--keep-logs", metavar="DIR", default=None,
                        help="copy the processes' logs (api.log, worker.log, beat.log) to DIR at the end")
    args = parser.parse_args()
    if args.interval < 1 or args.monitors < 1 or not 0 <= args.failing <= args.monitors:
        parser.error("--interval and --monitors must be >= 1, --failing between 0 and --monitors")

    import shutil
    import subprocess
    import tempfile

    # nohup'd or killed: stop the processes and drop the database and vhost all the same.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    me = [sys.executable, os.path.abspath(__file__)]
    name = f"lookout_bench_soak_{os.getpid()}"
    workdir = Path(tempfile.mkdtemp(prefix="lookout-soak-"))
    samples: list[Sample] = []
    target = None
    lookout = None
    db = queue = None
    out = open(args.samples_out, "w") if args.samples_out else None  # closed in finally
    findings: dict = {}
    lag_rows: list[tuple] = []
    alerting: dict = {}
    try:
        target = subprocess.Popen([*me, "--role", "target", str(args.flap_period), str(args.flap_down)],
                                  stdout=subprocess.PIPE, text=True)
        assert target.stdout is not None
        target_port = int(target.stdout.readline())
        target_url = f"http://127.0.0.1:{target_port}"
        lookout = stack.LookoutStack(workdir, name=name, env={
            # The processes' own defaults, not the stack's test-sized ones; creating 1,000 monitors in a
            # minute is above the default user rate (1200/minute with the samples' reads).
            "LOOKOUT_WORKER_CONCURRENCY": "50", "LOOKOUT_USER_RATE": "100000/minute", "LOOKOUT_LOG_FORMAT": "text",
            "LOOKOUT_PUSH_SWEEP_SECONDS": "30",
            "LOOKOUT_METRICS_HOST": "127.0.0.1"})  # the worker's and beat's ports on loopback only
        print(f"Soak: {args.monitors} monitors every {args.interval} s ({args.failing} flapping: down "
              f"{args.flap_down:g} s of every {args.flap_period:g} s), {args.duration / 60:g} min, sample every "
              f"{args.sample_every:g} s; {len(os.sched_getaffinity(0))} CPUs, load average "
              f"{os.getloadavg()[0]:.1f}, Python {sys.version.split()[0]}; database and vhost {name}", flush=True)
        lookout.up(worker={"LOOKOUT_DB_POOL_SIZE": "10"})
        channel = lookout.api("POST", "channels/", json={"name": "soak hook", "kind": "webhook",
                                                         "url": f"{target_url}/hook"})
        if channel.status_code != 201:
            raise SystemExit(f"creating the channel failed: {channel.status_code} {channel.text[:300]}")
        began = time.time()
        ids = monitors_create(lookout, count=args.monitors, failing=args.failing, interval=args.interval,
                              target=target_url, channel=channel.json()["id"])
        t0 = time.time()
        print(f"created {len(ids)} monitors through the API in {t0 - began:.1f} s "
              f"({len(ids) / (t0 - began):.0f}/s)", flush=True)
        db = Database(lookout.database_url, name)
        queue = Queue(lookout.env["CELERY_BROKER_URL"])
        starts = db.starts(ids)
        api_load = ApiLoad(lookout, ids)
        last_report = -args.report_every
        next_at = t0
        while True:
            api_load.round()
            sample = take_sample(lookout, db, queue, api_load, t0=t0, starts=starts, interval=args.interval,
                                 target_port=target_port)
            samples.append(sample)
            if out is not None:
                out.write(json.dumps({**{k: v for k, v in sample.__dict__.items() if k != "metrics"},
                                      "metrics": sample.metrics.__dict__}) + "\n")
                out.flush()
            if sample.at - last_report >= args.report_every - 0.5 * args.sample_every:
                report_line(samples, window=args.report_every)
                last_report = sample.at
            if sample.at >= args.duration:
                break
            next_at += args.sample_every
            time.sleep(max(0.0, next_at - time.time()))
        # The results of probes still in flight at the end are not waited for: the last line says how many.
        lag_rows = db.lag_windows(t0=t0, window=args.window)
        alerting = db.alerting()
        alerting["hooks"] = target_counts(target_port).get("hook", 0)
    finally:
        for closing in (db, queue):
            if closing is not None:
                try:
                    closing.close()
                except Exception:
                    pass
        if out is not None:
            out.close()
        if lookout is not None:
            lookout.down()
        if target is not None:
            stack.processes_stop([target], timeout=5)
        if all((workdir / f"{role}.log").exists() for role in ROLES):
            findings = log_findings(workdir)  # after the processes stopped: their shutdown counts too
        if args.keep_logs:  # also after a failure: the logs say why
            os.makedirs(args.keep_logs, exist_ok=True)
            for log in workdir.glob("*.log"):
                shutil.copy(log, Path(args.keep_logs, log.name))
        shutil.rmtree(workdir, ignore_errors=True)
    final_tables(samples, window=args.window, lag_rows=lag_rows, alerting=alerting, findings=findings,
                 api_load=api_load)
    return 0


def minutes(seconds: float) -> str:
    return f"{int(seconds // 60):>3}:{int(seconds % 60):02d}"


def role_of(label: str) -> str:
    return label.split()[0]


def report_line(samples: list[Sample], *, window: float) -> None:
    sample = samples[-1]
    earlier = [s for s in samples if s.at <= sample.at - window + 0.5] or samples[:1]
    start = earlier[-1]
    rss = "  ".join(f"{role} " + "/".join(f"{values[0] / 1024:.0f}" for label, values in sample.processes.items()
                                          if role_of(label) == role) for role in ROLES)
    fds = "  ".join(f"{role} " + "/".join(str(values[1]) for label, values in sample.processes.items()
                                          if role_of(label) == role) for role in ROLES)
    conns = "/".join(str(sample.connections[role]) for role in ROLES)
    p99, count = histogram_quantile(start.metrics, sample.metrics, 0.99)
    sent = sample.metrics.dispatches.get("sent", 0)
    ratio = sample.stored / sample.expected if sample.expected else float("nan")
    print(f"{minutes(sample.at)}  RSS MiB {rss} | fds {fds} | db conns {conns} | stored {sample.stored} "
          f"expected {sample.expected} ({100 * ratio:.1f}%) sent {sent:.0f} probed {sample.probed} | queue "
          f"{sample.queue if sample.queue is not None else '?'} | lag p99 <= {p99:g} s ({count:.0f}) | "
          f"expired {sample.metrics.expired:.0f} api errors {sample.api_errors}", flush=True)


def final_tables(samples: list[Sample], *, window: float, lag_rows: list[tuple], alerting: dict,
                 findings: dict, api_load: ApiLoad) -> None:
    if not samples:
        return
    end = samples[-1].at
    first = [s for s in samples if s.at < window]
    last = [s for s in samples if s.at > end - window]
    # The slope leaves the first window out: start-up growth (imports, caches, pools filling) is not a leak.
    steady = [s for s in samples if s.at >= window] if end >= 2 * window else samples
    print(f"\nPer process over {end / 60:.1f} min ({len(samples)} samples): mean of the first window (first "
          f"{window / 60:g} min) and of the last; slope per hour by least squares over "
          + ("the samples after the first window" if steady is not samples else "all samples (run < 2 windows)"))
    print(f"{'process':<24} {'RSS MiB first':>13} {'last':>7} {'change':>7} {'MiB/h':>7} {'peak':>7} "
          f"{'fds first':>9} {'last':>6} {'fds/h':>7} {'max':>5} {'threads':>7} {'CPU% first':>10} {'last':>6}")
    labels = list(dict.fromkeys(label for s in samples for label in s.processes))
    for label in labels:
        def values(chosen: list[Sample], index: int, label: str = label) -> list[float]:
            return [s.processes[label][index] for s in chosen if label in s.processes]

        rss_first, rss_last = mean(values(first, 0)) / 1024, mean(values(last, 0)) / 1024
        fds_first, fds_last = mean(values(first, 1)), mean(values(last, 1))
        rss_slope = slope_per_hour([(s.at, s.processes[label][0] / 1024) for s in steady if label in s.processes])
        fds_slope = slope_per_hour([(s.at, s.processes[label][1]) for s in steady if label in s.processes])
        seen = [s for s in samples if label in s.processes]
        note = "" if len(seen) == len(samples) else f"  (in {len(seen)} of {len(samples)} samples)"
        threads = values(samples, 3)
        print(f"{label:<24} {rss_first:>13.1f} {rss_last:>7.1f} {rss_last - rss_first:>+7.1f} {rss_slope:>+7.1f} "
              f"{max(values(samples, 0)) / 1024:>7.1f} {fds_first:>9.1f} {fds_last:>6.1f} {fds_slope:>+7.1f} "
              f"{max(values(samples, 1)):>5.0f} {f'{threads[0]:.0f}->{threads[-1]:.0f}':>7} "
              f"{cpu_percent(first, label):>9.1f}% {cpu_percent(last, label):>5.1f}%{note}")
    print(f"{'db connections':<24} " + "  ".join(
        f"{role} {mean([s.connections[role] for s in first]):.1f} -> {mean([s.connections[role] for s in last]):.1f}"
        f" (max {max(s.connections[role] for s in samples)})" for role in ROLES))

    print(f"\nPer window of {window / 60:g} min: probes due on the schedule, sent by beat, probed (target), stored "
          "(rows), and schedule lag (s)")
    print(f"{'window':<13} {'due':>7} {'sent':>7} {'probed':>7} {'stored':>7} {'stored/due':>10} "
          f"{'worker lag p99':>14} {'obs':>6} {'results lag p50':>15} {'p99':>7} {'max':>7} {'rows':>6} "
          f"{'queue max':>9}")
    by_window = {int(row[0]): row for row in lag_rows}
    edges = [0.0]
    while edges[-1] + window < end + 1e-6:
        edges.append(edges[-1] + window)
    if edges[-1] < end - 1e-6:
        edges.append(end)
    origin = samples[0]
    for index, (low, high) in enumerate(zip(edges, edges[1:], strict=False)):
        # The samples nearest the window's edges (they are taken at --sample-every plus a little).
        a = min(samples, key=lambda s, at=low: abs(s.at - at)) if index else origin
        b = min(samples, key=lambda s, at=high: abs(s.at - at))
        if b is a:
            continue
        p99, obs = histogram_quantile(a.metrics, b.metrics, 0.99)
        due, stored = b.expected - a.expected, b.stored - a.stored
        sent = b.metrics.dispatches.get("sent", 0) - a.metrics.dispatches.get("sent", 0)
        row = by_window.get(index)
        depth = max((s.queue or 0) for s in samples if a.at <= s.at <= b.at)
        results = (f"{row[2]:>15.3f} {row[3]:>7.3f} {row[4]:>7.3f} {row[1]:>6}" if row
                   else f"{'':>15} {'':>7} {'':>7} {'':>6}")
        print(f"{minutes(a.at)}-{minutes(b.at).strip():<5} {due:>7} {sent:>7.0f} {b.probed - a.probed:>7} "
              f"{stored:>7} {100 * stored / max(due, 1):>9.1f}% {'<= ' + format(p99, 'g'):>14} {obs:>6.0f} {results} "
              f"{depth:>9}")
    s0, s1 = samples[0], samples[-1]
    m = s1.metrics
    sent = m.dispatches.get("sent", 0)
    print(f"\nWhole run (from the first sample, {minutes(s0.at).strip()}, to the last, {minutes(s1.at).strip()}; "
          f"since the monitors were created for the totals):")
    print(f"  due on the schedule {s1.expected}, sent by beat {sent:.0f} ({100 * sent / max(s1.expected, 1):.2f}%), "
          f"probed (target) {s1.probed}, stored {s1.stored} ({100 * s1.stored / max(s1.expected, 1):.2f}% of due, "
          f"{100 * s1.stored / max(sent, 1):.2f}% of sent)")
    print(f"  beat dispatches by outcome {dict(m.dispatches)}; worker probes {dict(m.probes)}, "
          f"expired {m.expired:.0f}, task failures {m.task_failures:.0f}, retries {m.task_retries:.0f}")
    if alerting:
        print(f"  results success {alerting['success']}, failure {alerting['failure']}; incidents "
              f"{alerting['incidents']} (closed {alerting['closed']}); notifications {alerting['notifications']}; "
              f"webhooks received {alerting['hooks']}")
    lat = sorted(api_load.latencies)
    print(f"  API load: {api_load.requests} requests, {api_load.errors} not 200, p50 "
          f"{1000 * common.percentile(lat, 0.5):.1f} ms, p99 {1000 * common.percentile(lat, 0.99):.1f} ms, max "
          f"{1000 * max(lat, default=float('nan')):.1f} ms")
    for text in api_load.error_samples:
        print(f"    {text}")
    for role, (lines, errors, tracebacks, distinct) in findings.items():
        print(f"  {role}.log: {lines} lines, {errors} ERROR/CRITICAL, {tracebacks} tracebacks")
        for text in distinct:
            print(f"    {text}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--role"]:
        if sys.argv[2] == "target":
            role_target(float(sys.argv[3]), float(sys.argv[4]))
        sys.exit(0)
    sys.exit(main())
