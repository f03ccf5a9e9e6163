"""A real Prometheus scrapes real `lookout api`, `worker` and `beat` processes while monitors probe local targets.

Then every dashboard panel's query (variables filled in) runs through Prometheus' HTTP API and must return data,
every metric the dashboards and rules name must exist in the scrape, the rules must evaluate cleanly, the API's
gunicorn workers must add up, and the series count must stay bounded with 1,000 monitors.
"""

import math
import re
import ssl
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import trustme
from prometheus_client.parser import text_string_to_metric_families

from support.dashboards import (
    DASHBOARDS,
    RULES,
    grafana_regex,
    load,
    metric_names,
    queries,
    substitute,
    variable_queries,
)
from support.http_target import HttpTarget
from support.prometheus import NAMESPACE, PrometheusServer
from support.stack import LookoutStack, wait_until

pytestmark = pytest.mark.e2e

SCRAPE = "1s"
# Grafana's $__rate_interval is max(4 x scrape interval, step + scrape interval); a 10 s window holds ~10 scrapes.
RATE_INTERVAL = "10s"
API_WORKERS = 3


@pytest.fixture(scope="module")
def targets():
    # A certificate from a CA the worker does not trust: the monitor sets verify_tls=false, and Lookout still
    # reads the certificate's expiry.
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme.CA().issue_cert("127.0.0.1").configure_cert(context)
    made = {"ok": HttpTarget(), "failing": HttpTarget(), "tls": HttpTarget(tls=context)}
    made["failing"].set(status=500, body=b"broken")
    yield made
    for target in made.values():
        target.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("prometheus-stack")
    stack = LookoutStack(workdir, name=f"lookout_prom_{uuid.uuid4().hex[:8]}")
    stack.multiproc_dir = workdir / "api-metrics"
    try:
        # A 1 s cache lets beat's per-monitor series follow each status change within a scrape or two.
        yield stack.up(api={"LOOKOUT_API_WORKERS": str(API_WORKERS),
                            "PROMETHEUS_MULTIPROC_DIR": str(stack.multiproc_dir)},
                       beat={"LOOKOUT_METRICS_CACHE_SECONDS": "1"})
    finally:
        stack.down()


@pytest.fixture(scope="module")
def prometheus(stack, tmp_path_factory):
    server = PrometheusServer(
        tmp_path_factory.mktemp("prometheus"), token=stack.metrics_token, rule_files=(RULES,), scrape_interval=SCRAPE,
        targets={"api": f"127.0.0.1:{stack.api_port}", "worker": f"127.0.0.1:{stack.worker_metrics_port}",
                 "beat": f"127.0.0.1:{stack.beat_metrics_port}"})
    yield server.start()
    server.stop()


# Every opt-in detail (docs/metrics.md) for these few: the Monitor dashboard's status, phase and region panels.
DETAILS = ["status", "phases", "incidents", "regions"]


def monitor_create(stack: LookoutStack, **fields) -> dict:
    response = stack.api("POST", "monitors/", json={"interval": 1, "metrics": DETAILS, **fields})
    assert response.status_code == 201, response.text
    return response.json()


def status_of(stack: LookoutStack, monitor: dict) -> str:
    return stack.api("GET", f"monitors/{monitor['id']}/").json()["status"]


def scraped_status(prometheus: PrometheusServer, monitor: dict, status: str) -> bool:
    return bool(prometheus.query(f'lookout_monitor_status{{monitor_id="{monitor["id"]}", status="{status}"}} == 1'))


@pytest.fixture(scope="module")
def monitors(stack, prometheus, targets):
    """Monitors up, down, paused and one HTTPS monitor that goes up, down and up again while Prometheus watches."""
    made = {
        "ok": monitor_create(stack, name="ok", url=targets["ok"].url),
        "failing": monitor_create(stack, name="failing", url=targets["failing"].url),
        # Naming its (one) region gives it per-region series, for the Monitor dashboard's "Up by region".
        "tls": monitor_create(stack, name="tls site", url=targets["tls"].url, verify_tls=False, regions=["home"]),
        "paused": monitor_create(stack, name="paused", url=targets["ok"].url, interval=3600),
    }
    assert stack.api("POST", f"monitors/{made['paused']['id']}/pause/").status_code == 200
    # Status changes for the annotation query, each seen by a scrape (the query looks back to this moment).
    made["tls"]["changes_from"] = time.time()
    for status, behaviour in (("up", 200), ("down", 503), ("up", 200)):
        targets["tls"].set(status=behaviour)
        wait_until(lambda status=status: scraped_status(prometheus, made["tls"], status), timeout=30,
                   what=f"Prometheus to see the TLS monitor {status}")
        # Held over a few more scrapes: a state one scrape saw can fall between the annotation query's steps.
        time.sleep(3)
    wait_until(lambda: scraped_status(prometheus, made["failing"], "down"), timeout=30, what="a monitor down")
    # API traffic spread over several scrapes (a rate needs a counter that grows between two of them): reads,
    # a 404, a 400.
    for _ in range(12):
        stack.api("GET", "monitors/")
        stack.api("GET", f"monitors/{made['ok']['id']}/")
        stack.api("GET", "monitors/999999/")
        stack.api("POST", "monitors/", json={"name": "bad"})
        time.sleep(0.4)
    return made


def has_data(result: list[dict]) -> bool:
    return any(not math.isnan(float(value)) for series in result for _, value in series["values"])


def variables_for(monitor: dict) -> dict[str, str]:
    return {"namespace": NAMESPACE, "monitor": str(monitor["id"]), "datasource": "prometheus"}


def test_prometheus_scrapes_all_three_processes_with_the_token(prometheus, monitors):
    health = {target["labels"]["container"]: target["health"] for target in prometheus.targets()}
    assert health == {"api": "up", "worker": "up", "beat": "up"}


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.name)
def test_every_dashboard_query_returns_data(prometheus, monitors, path):
    empty = []
    for query in queries(load(path)):
        expr = substitute(query.expr, variables_for(monitors["tls"]), rate_interval=RATE_INTERVAL)
        if not has_data(prometheus.query_range(expr, seconds=90)):
            empty.append(f"{query.panel}: {expr}")
    assert empty == []


def test_the_dashboard_variables_offer_the_namespace_and_the_monitors_by_name(prometheus, monitors):
    monitor = load(next(path for path in DASHBOARDS if path.name == "lookout-monitor.json"))
    for variable, query in variable_queries(monitor):
        expr = substitute(query, {"namespace": NAMESPACE}, rate_interval=RATE_INTERVAL)
        if variable["name"] == "namespace":
            metric = re.fullmatch(r"label_values\((\w+), namespace\)", expr).group(1)
            assert NAMESPACE in prometheus.api("label/namespace/values", **{"match[]": metric})
        else:  # Grafana renders query_result(...) as `name{a="1",b="2"} value timestamp`; the regex picks from it
            inner = re.fullmatch(r"query_result\((.+)\)", expr).group(1)
            lines = [f"{s['metric']['__name__']}{{"
                     + ",".join(f'{k}="{v}"' for k, v in sorted(s["metric"].items()) if k != "__name__")
                     + f"}} {s['value'][1]} {s['value'][0] * 1000}" for s in prometheus.query(inner)]
            pattern = grafana_regex(variable["regex"])
            options = {m.group("value"): m.group("text") for line in lines if (m := pattern.search(line))}
            assert options[str(monitors["tls"]["id"])] == "tls site"


def test_the_status_change_annotation_marks_each_change(prometheus, monitors):
    annotation = next(q for q in queries(load(DASHBOARDS[0])) if q.panel.startswith("annotation"))
    expr = substitute(annotation.expr, variables_for(monitors["tls"]), rate_interval=RATE_INTERVAL)
    # Back to the first change, however long the module's other tests took on a busy machine.
    since = time.time() - monitors["tls"]["changes_from"] + 10
    # Steps finer than the scrape interval, so no sample is stepped over.
    statuses = {series["metric"]["status"] for series in prometheus.query_range(expr, seconds=since, step=0.5)}
    assert {"up", "down"} <= statuses


def test_every_metric_the_dashboards_and_rules_name_exists_in_the_scrape(prometheus, monitors):
    named = {name for path in DASHBOARDS for query in queries(load(path)) for name in metric_names(query.expr)}
    named |= metric_names(RULES.read_text())
    assert named - prometheus.metric_names() == set()


def test_the_alert_rules_evaluate_without_errors_and_none_fires(prometheus, monitors):
    wait_until(lambda: all(rule.get("lastEvaluation", "").startswith("2") for rule in prometheus.rules()),
               timeout=15, what="every rule to be evaluated")
    rules = prometheus.rules()
    assert {rule["name"] for rule in rules} >= {"LookoutBeatNotTicking", "LookoutApiErrors"}
    assert [(rule["name"], rule.get("lastError")) for rule in rules if rule["health"] != "ok"] == []
    assert [rule["name"] for rule in rules if rule["state"] == "firing"] == []


def test_schedule_lag_is_measured_from_beat_s_due_time(prometheus, monitors, capsys):
    assert prometheus.value("sum(increase(lookout_schedule_lag_seconds_count[30s]))") > 10
    lag = "sum by (le) (rate(lookout_schedule_lag_seconds_bucket[30s]))"
    p50, p99 = (prometheus.value(f"histogram_quantile({q}, {lag})") for q in (0.5, 0.99))
    with capsys.disabled():
        print(f"\n[schedule lag] loopback, 1 s monitors: p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms")
    # Loopback: beat sends on time and a worker picks up at once.
    assert p99 < 1


# --- the API under gunicorn's multiprocess mode ---------------------------------------------------------------


def samples(text: str, name: str) -> list:
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples
            if sample.name == name]


def events_requests(text: str) -> float:
    return sum(s.value for s in samples(text, "lookout_http_requests_total") if s.labels["route"] == "/api/v1/events/")


def test_counts_from_several_api_worker_processes_add_up(stack, prometheus, monitors):
    before = events_requests(stack.metrics("api"))
    with ThreadPoolExecutor(max_workers=12) as pool:  # a new connection each: gunicorn spreads them over workers
        answers = list(pool.map(lambda _: stack.api("GET", "events/").status_code, range(90)))
    assert answers == [200] * 90

    # Each API worker process writes its own files; any one of them answers /metrics with the sum of all.
    pids = {path.stem.rsplit("_", 1)[1] for path in stack.multiproc_dir.glob("counter_*.db")}
    assert len(pids) >= 2, f"requests reached only {pids}"
    scraped = [events_requests(stack.metrics("api")) for _ in range(6)]
    assert scraped == [before + 90] * 6
    wait_until(lambda: prometheus.value('sum(lookout_http_requests_total{route="/api/v1/events/"})') == before + 90,
               timeout=10, what="Prometheus to scrape the sum")

    text = stack.metrics("api")
    families = {family.name for family in text_string_to_metric_families(text)}
    assert {"lookout_http_requests", "lookout_http_request_duration_seconds"} <= families
    # The worker's and beat's own series never show up here (at zero, with a pid label per gunicorn worker).
    assert not {name for name in families if name.startswith(("lookout_worker_", "lookout_beat_", "lookout_schedule"))}
    labels = [s.labels for family in text_string_to_metric_families(text) for s in family.samples]
    assert not [label for label in labels if "pid" in label]
    routes = {label["route"] for label in labels if "route" in label}
    assert all(route == "unmatched" or route.startswith("/api/") for route in routes), routes
    assert not [route for route in routes if re.search(r"/\d+/", route)], "raw ids in route labels"


# --- series count: 1,000 monitors -----------------------------------------------------------------------------

BULK = 1000

# Rows as probed HTTPS monitors leave them (every default per-monitor series present). Their schedules are disabled and
# bulk_create tells beat nothing: these hosts are never probed, the test stays on loopback.
BULK_CREATE = f"""
from datetime import timedelta
from django.contrib.auth import get_user_model
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask
from lookout.monitors.models import Monitor
owner = get_user_model().objects.get(username="e2e")
now = timezone.now()
every, _ = IntervalSchedule.objects.get_or_create(every=60, period=IntervalSchedule.SECONDS)
tasks = PeriodicTask.objects.bulk_create([
    PeriodicTask(name=f"bulk:{{i}}", task="lookout.probes.tasks.probe_monitor", interval=every, enabled=False)
    for i in range({BULK})
], batch_size=500)
phases = {{"dns": 1.0, "connect": 2.0, "tls": 3.0, "processing": 4.0, "transfer": 5.0}}
Monitor.objects.bulk_create([
    Monitor(owner=owner, name=f"bulk {{i}}", url=f"https://bulk-{{i}}.example.com/health?token=secret", interval=60,
            timeout=10, status="up", last_checked_at=now, last_response_time_ms=15.0, last_phases=phases,
            tls_not_after=now + timedelta(days=30), periodic_task=task)
    for i, task in enumerate(tasks)
], batch_size=500)
"""


def series(text: str) -> tuple[int, int]:
    """(series without a monitor_id label, series with one) in one /metrics payload."""
    found = [s for family in text_string_to_metric_families(text) for s in family.samples]
    per_monitor = sum(1 for s in found if "monitor_id" in s.labels)
    return len(found) - per_monitor, per_monitor


def test_series_stay_bounded_with_1000_monitors(stack, prometheus, monitors, capsys):
    before = {name: series(stack.metrics(name)) for name in ("api", "worker", "beat")}
    stack.run("manage", "shell", "-c", BULK_CREATE)
    wait_until(lambda: series(stack.metrics("beat"))[1] >= before["beat"][1] + BULK * 5, timeout=20,
               what="beat to serve the new monitors")
    after = {name: series(stack.metrics(name)) for name in ("api", "worker", "beat")}

    per_monitor = (after["beat"][1] - before["beat"][1]) / BULK
    # The default ones alone (the bulk monitors opt into nothing): info, up, last duration, last check, TLS expiry.
    assert per_monitor == 5
    assert after["worker"][1] == after["api"][1] == 0, "per-monitor series only come from beat"
    for name in ("api", "worker", "beat"):
        assert abs(after[name][0] - before[name][0]) <= 5, f"{name}'s own series grew with the monitors"

    wait_until(lambda: (prometheus.value('sum(scrape_samples_scraped{container="beat"})') or 0) >= sum(after["beat"]),
               timeout=20, what="Prometheus to scrape beat with 1,000 more monitors")
    stored = int(prometheus.value('count({job="lookout", __name__=~"lookout_.*|process_.*|python_.*"})'))
    time.sleep(1.1)  # past the refresh interval: beat serves a newer snapshot, which its refresher read
    started = time.perf_counter()
    beat_text = stack.metrics("beat")
    scrape_seconds = time.perf_counter() - started
    read_seconds = next(s.value for s in samples(beat_text, "lookout_monitor_collector_duration_seconds"))
    monitors_now = BULK + len(monitors)
    total = sum(sum(counts) for counts in after.values())
    at_scale = after["api"][0] + 10 * after["worker"][0] + after["beat"][0] + 100_000 * per_monitor
    with capsys.disabled():
        print(f"\n[series] {monitors_now} monitors: api {sum(after['api'])}, worker {sum(after['worker'])}, "
              f"beat {sum(after['beat'])} ({after['beat'][1]} per-monitor) = {total} series scraped "
              f"({stored} stored by Prometheus); {per_monitor:g} per monitor; computed for 100,000 monitors and "
              f"10 worker pods: {at_scale:,.0f}; beat answered /metrics in {scrape_seconds * 1000:.0f} ms "
              f"(its last read of the monitors table: {read_seconds * 1000:.0f} ms)")
