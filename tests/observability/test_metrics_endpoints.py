"""Metrics: the API's /metrics and request counts, the per-monitor collector, the worker/beat metrics port."""

import socket
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from prometheus_client import REGISTRY
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families

from lookout.monitors import services
from lookout.monitors.models import Monitor
from lookout.monitors.spec import MonitorSpec
from lookout.observability import refresher
from lookout.observability.collector import MonitorCollector
from lookout.observability.exposition import metrics_payload
from lookout.observability.refresher import SnapshotFeed, snapshot_write
from lookout.observability.server import metrics_server_start
from lookout.probes import results
from lookout.probes.results import ProbeRecord

TOKEN = "metrics-test-token"
CHECKED_AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def requests_total(route: str, method: str = "GET", status: str = "200") -> float:
    return REGISTRY.get_sample_value("lookout_http_requests_total",
                                     {"route": route, "method": method, "status": status}) or 0.0


def routes_seen() -> set[str]:
    return {sample.labels["route"] for family in REGISTRY.collect() if family.name == "lookout_http_requests"
            for sample in family.samples}


def monitor(owner, *, url: str = "https://example.com/", name: str = "Example") -> Monitor:
    # failure_threshold=1: one failed probe confirms "down" (the default asks for two in a row).
    return services.monitor_create(owner=owner, spec=MonitorSpec(name=name, url=url, interval=60, failure_threshold=1))


def probed(target: Monitor, *, success: bool, elapsed_ms: float = 250.0) -> Monitor:
    results.probe_result_record(monitor_id=target.pk, record=ProbeRecord(
        checked_at=CHECKED_AT, success=success, status_code=200 if success else 500,
        response_time_ms=elapsed_ms, error="" if success else "HTTP 500", task_id=str(uuid.uuid4())))
    target.refresh_from_db()
    return target


def by_name(families: Iterator[Metric]) -> dict[str, dict[tuple, float]]:
    """{family: {sorted label items: value}}"""
    return {family.name: {tuple(sorted(s.labels.items())): s.value for s in family.samples} for family in families}


# --- the API's /metrics -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_api_metrics_need_the_bearer_token_when_one_is_set(client, settings):
    settings.LOOKOUT_METRICS_TOKEN = TOKEN

    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong-token").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Token {TOKEN}").status_code == 401
    refused = client.get("/metrics")
    assert refused["WWW-Authenticate"] == "Bearer"
    assert b"lookout_" not in refused.content

    allowed = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")

    assert allowed.status_code == 200
    assert allowed["Content-Type"].startswith("text/plain")
    assert b"lookout_http_requests_total" in allowed.content


@pytest.mark.django_db
def test_api_metrics_are_open_when_no_token_is_set_and_carry_no_per_monitor_series(client, settings, alice):
    settings.LOOKOUT_METRICS_TOKEN = ""
    monitor(alice)

    response = client.get("/metrics")

    assert response.status_code == 200
    # Per-monitor series come from one place (beat), never from every API replica.
    assert b"lookout_monitor_status" not in response.content


@pytest.mark.django_db
def test_api_requests_are_counted_by_route_template_not_raw_path(alice_api, alice):
    target = monitor(alice)
    detail_before = requests_total("/api/v1/monitors/{pk}/")
    list_before = requests_total("/api/v1/monitors/")
    missing_before = requests_total("/api/v1/monitors/{pk}/", status="404")

    assert alice_api.get(f"/api/v1/monitors/{target.pk}/").status_code == 200
    assert alice_api.get(f"/api/v1/monitors/{target.pk}/").status_code == 200
    assert alice_api.get("/api/v1/monitors/").status_code == 200
    assert alice_api.get("/api/v1/monitors/999999999/").status_code == 404

    assert requests_total("/api/v1/monitors/{pk}/") == detail_before + 2
    assert requests_total("/api/v1/monitors/") == list_before + 1
    assert requests_total("/api/v1/monitors/{pk}/", status="404") == missing_before + 1
    assert f"/api/v1/monitors/{target.pk}/" not in routes_seen()
    assert "/api/v1/monitors/999999999/" not in routes_seen()
    assert REGISTRY.get_sample_value("lookout_http_request_duration_seconds_count",
                                     {"route": "/api/v1/monitors/{pk}/", "method": "GET"}) >= 2


@pytest.mark.django_db
def test_paths_matching_no_route_share_one_label(client):
    before = requests_total("unmatched", status="404")

    client.get("/no/such/page/abc123")
    client.get("/another/missing/path")

    assert requests_total("unmatched", status="404") == before + 2
    assert not any("abc123" in route for route in routes_seen())


# --- the per-monitor collector ------------------------------------------------------------------------------
# transaction=True: the collector closes stale connections, as its own scrape thread must; that would end
# a test transaction.


@pytest.mark.django_db(transaction=True)
def test_the_collector_reports_each_monitors_state_duration_and_last_check(alice, settings):
    settings.LOOKOUT_MONITOR_METRICS_DETAIL = ["status"]  # opt-in: the state set
    up = probed(monitor(alice, name="up"), success=True, elapsed_ms=250)
    down = probed(monitor(alice, name="down"), success=False, elapsed_ms=1500)
    pending = monitor(alice, name="pending")
    paused = services.monitor_pause(monitor=monitor(alice, name="paused"))

    series = by_name(MonitorCollector(cache_seconds=0).collect())

    status = series["lookout_monitor_status"]
    for target, expected in ((up, "up"), (down, "down"), (pending, "pending"), (paused, "paused")):
        values = {s: status[(("monitor_id", str(target.pk)), ("status", s))]
                  for s in ("pending", "up", "down", "paused")}
        assert values == {s: 1.0 if s == expected else 0.0 for s in values}, expected
    assert series["lookout_monitor_up"] == {(("monitor_id", str(up.pk)),): 1.0,
                                            (("monitor_id", str(down.pk)),): 0.0}
    assert series["lookout_monitor_last_duration_seconds"] == {(("monitor_id", str(up.pk)),): 0.25,
                                                               (("monitor_id", str(down.pk)),): 1.5}
    assert series["lookout_monitor_last_check_timestamp_seconds"] == {
        (("monitor_id", str(up.pk)),): CHECKED_AT.timestamp(),
        (("monitor_id", str(down.pk)),): CHECKED_AT.timestamp()}


@pytest.mark.django_db(transaction=True)
def test_monitor_info_names_the_host_but_never_credentials_or_query_strings(alice):
    target = monitor(alice, name="Billing API", url="http://user:secret@example.com:8443/path?token=abc")

    info = by_name(MonitorCollector(cache_seconds=0).collect())["lookout_monitor_info"]

    assert info == {(("host", "example.com"), ("monitor_id", str(target.pk)), ("name", "Billing API"),
                     ("owner", "alice"), ("type", "http")): 1.0}
    label_values = " ".join(value for labels in info for _, value in labels)
    for leaked in ("user", "secret", "token", "abc", "/path", "8443"):
        assert leaked not in label_values


@pytest.mark.django_db(transaction=True)
def test_the_collector_serves_cached_rows_between_reloads(alice):
    first = monitor(alice, name="first")
    cached = MonitorCollector(cache_seconds=3600)
    assert {labels[1][1] for labels in by_name(cached.collect())["lookout_monitor_info"]} == {str(first.pk)}

    second = monitor(alice, name="second")

    # A scrape every few seconds must not become a table scan every few seconds.
    assert {labels[1][1] for labels in by_name(cached.collect())["lookout_monitor_info"]} == {str(first.pk)}
    fresh = MonitorCollector(cache_seconds=0)
    assert {labels[1][1] for labels in by_name(fresh.collect())["lookout_monitor_info"]} == {
        str(first.pk), str(second.pk)}


@pytest.mark.django_db(transaction=True)
def test_the_beat_payload_includes_per_monitor_series_and_the_worker_payload_does_not(alice, monkeypatch,
                                                                                        tmp_path):
    target = probed(monitor(alice), success=True)
    # The snapshot as beat's refresher process writes it (that process itself: test_monitor_series.py).
    feed = SnapshotFeed(every=10, shards=1, directory=tmp_path)
    snapshot_write(tmp_path, MonitorCollector().snapshot().shards)
    monkeypatch.setattr(refresher, "_feed", feed)

    beat = {f.name: f for f in text_string_to_metric_families(metrics_payload(include_monitors=True)[0].decode())}
    worker = {f.name for f in text_string_to_metric_families(metrics_payload(include_monitors=False)[0].decode())}

    up = {s.labels["monitor_id"]: s.value for s in beat["lookout_monitor_up"].samples}
    assert up == {str(target.pk): 1.0}
    assert "lookout_probes" in beat and "lookout_probes" in worker
    assert not {"lookout_monitor_up", "lookout_monitor_status", "lookout_monitor_info"} & worker


# --- the worker and beat metrics port -----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def fetch(url: str, token: str | None = None) -> tuple[int, bytes, dict[str, str]]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read(), dict(error.headers)


@pytest.fixture
def metrics_port():
    servers = []

    def start(**options) -> str:
        port = free_port()
        server = metrics_server_start(port=port, host="127.0.0.1", include_monitors=False, **options)
        assert server is not None
        servers.append(server)
        return f"http://127.0.0.1:{port}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_the_metrics_port_requires_the_token_when_one_is_set(metrics_port, settings):
    settings.LOOKOUT_METRICS_TOKEN = TOKEN
    base = metrics_port(health=lambda: (True, "ok"))

    status, body, headers = fetch(f"{base}/metrics")
    assert (status, headers.get("WWW-Authenticate")) == (401, "Bearer")
    assert fetch(f"{base}/metrics", token="wrong")[0] == 401

    status, body, headers = fetch(f"{base}/metrics", token=TOKEN)

    assert status == 200
    assert headers["Content-Type"].startswith("text/plain")
    assert {f.name for f in text_string_to_metric_families(body.decode())} >= {
        "lookout_probes", "lookout_probe_duration_seconds"}


def test_the_metrics_port_is_open_without_a_configured_token(metrics_port, settings):
    settings.LOOKOUT_METRICS_TOKEN = ""
    base = metrics_port(health=lambda: (True, "ok"))

    status, body, _ = fetch(f"{base}/metrics")

    assert status == 200
    assert b"lookout_probes_total" in body


def test_the_metrics_port_answers_healthz_without_the_token(metrics_port, settings):
    settings.LOOKOUT_METRICS_TOKEN = TOKEN
    healthy = metrics_port(health=lambda: (True, "ok"))
    unhealthy = metrics_port(health=lambda: (False, "broker lost"))

    assert fetch(f"{healthy}/healthz")[:2] == (200, b"ok\n")
    assert fetch(f"{unhealthy}/healthz")[:2] == (503, b"broker lost\n")
    assert fetch(f"{healthy}/elsewhere")[0] == 404


def test_port_zero_disables_the_metrics_port():
    assert metrics_server_start(port=0, include_monitors=False, health=lambda: (True, "ok")) is None


def test_a_busy_port_is_logged_not_fatal(metrics_port, caplog):
    base = metrics_port(health=lambda: (True, "ok"))
    port = int(base.rsplit(":", 1)[1])

    assert metrics_server_start(port=port, host="127.0.0.1", include_monitors=False,
                                health=lambda: (True, "ok")) is None
    assert f"metrics port {port} unavailable" in caplog.text
