"""The per-monitor series set by design (docs/metrics.md): at most 5 per monitor by default, the opt-in details
add exactly their documented series, and beat serves the refresher process's snapshot over HTTP."""

import gzip
import json
import os
import re
import socket
import sys
import time
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jsonschema
import pytest
from django.db import connection
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask
from prometheus_client.parser import text_string_to_metric_families

from lookout.monitors.models import MetricsDetail, Monitor, MonitorRegion, MonitorStatus
from lookout.observability import collector
from lookout.observability import refresher as refresher_module
from lookout.observability.collector import (
    DEFAULT_FAMILIES,
    FAMILIES,
    MONITORS,
    OPT_IN_FAMILIES,
    READ_DURATION,
    READ_UP,
    SNAPSHOT_TIME,
    MonitorCollector,
)
from lookout.observability.refresher import SnapshotFeed
from lookout.observability.server import metrics_server_start
from support.api_errors import field_errors
from support.chart import VALUE_SETS, of_kind, render
from support.dashboards import DASHBOARDS, RULES, load, metric_names, panels, queries

DOCS = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"
CHECKED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NOT_AFTER = datetime(2027, 1, 1, tzinfo=UTC)
PHASES_MS = {"dns": 1.0, "connect": 2.0, "tls": 3.0, "processing": 4.0, "transfer": 5.0}
# Of every 10 monitors: 4 up with a certificate (5 series), 3 down without (4), 2 pending never probed (1),
# 1 paused, probed before (3: info, last duration, last check).
KINDS = [("up", True)] * 4 + [("down", False)] * 3 + [("pending", False)] * 2 + [("paused", False)]


def series_of(text: str) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    return {(s.name, tuple(sorted(s.labels.items()))) for f in text_string_to_metric_families(text)
            for s in f.samples}


def per_monitor(series: set) -> set:
    return {item for item in series if any(label == "monitor_id" for label, _ in item[1])}


def monitors_seed(owner, count: int, **fields) -> list[Monitor]:
    # Real rows, written in two statements: a probed monitor needs a PeriodicTask (disabled: no beat runs here).
    every = IntervalSchedule.objects.create(every=60, period=IntervalSchedule.SECONDS)
    tasks = PeriodicTask.objects.bulk_create([PeriodicTask(name=f"series-{uuid.uuid4()}", interval=every,
                                                           task="lookout.probes.tasks.probe_monitor", enabled=False)
                                              for _ in range(count)])
    rows = []
    for index in range(count):
        status, tls = KINDS[index % len(KINDS)]
        probed = status != "pending"
        rows.append(Monitor(owner=owner, name=f"m{index}", url=f"https://h{index % 50}.example/x?token=t",
                            interval=60, timeout=10, status=status, periodic_task=tasks[index],
                            last_checked_at=CHECKED if probed else None,
                            last_response_time_ms=120.0 if probed else None,
                            last_phases=PHASES_MS if probed else {}, tls_not_after=NOT_AFTER if tls else None,
                            **fields))
    return Monitor.objects.bulk_create(rows)


def documented_default(monitor: Monitor) -> set:
    """The default series of one monitor as docs/metrics.md states them."""
    mid = (("monitor_id", str(monitor.pk)),)
    answer = {("lookout_monitor_info", tuple(sorted((*mid, ("name", monitor.name), ("owner", "alice"),
                                                     ("type", "http"), ("host", monitor.url.split("/")[2])))))}
    if monitor.status in ("up", "down"):
        answer.add(("lookout_monitor_up", mid))
    if monitor.last_checked_at is not None:
        answer |= {("lookout_monitor_last_duration_seconds", mid),
                   ("lookout_monitor_last_check_timestamp_seconds", mid)}
    if monitor.tls_not_after is not None:
        answer.add(("lookout_tls_cert_expiry_timestamp_seconds", mid))
    return answer


def documented_table(section: str) -> list[str]:
    """The metric names of a docs/metrics.md table under `section`."""
    text = DOCS.read_text()
    body = text.split(section, 1)[1].split("\n\n", 2)[1]
    return re.findall(r"^\| `(lookout_[a-z_]+)`", body, flags=re.M)


@pytest.mark.django_db(transaction=True)
def test_at_1k_monitors_the_series_are_exactly_the_documented_default_ones(alice):
    monitors = monitors_seed(alice, 1000)

    text = MonitorCollector().exposition().decode()

    series = series_of(text)
    expected = set().union(*map(documented_default, monitors))
    assert per_monitor(series) == expected
    assert len(expected) == 100 * (4 * 5 + 3 * 4 + 2 * 1 + 1 * 3) == 3700
    by_monitor: dict[str, int] = {}
    for _, labels in expected:
        by_monitor[dict(labels)["monitor_id"]] = by_monitor.get(dict(labels)["monitor_id"], 0) + 1
    assert max(by_monitor.values()) == 5
    assert [f.name for f in DEFAULT_FAMILIES] == documented_table("### Default series")
    assert [f.name for f in OPT_IN_FAMILIES] == documented_table("### Opt-in series")
    totals = {s.labels["status"]: s.value for f in text_string_to_metric_families(text) for s in f.samples
              if s.name == "lookout_monitors"}
    assert totals == {"up": 400, "down": 300, "pending": 200, "paused": 100, "maintenance": 0, "degraded": 0}
    assert "token" not in text


@pytest.mark.django_db(transaction=True)
def test_each_opt_in_detail_adds_exactly_its_documented_series(alice, settings):
    settings.LOOKOUT_REGIONS = ["home", "eu", "us"]
    plain, *opted = monitors_seed(alice, 5)  # up, up, up, up (with certificates), down
    for monitor, detail in zip(opted, MetricsDetail.values, strict=True):
        Monitor.objects.filter(pk=monitor.pk).update(metrics=[detail], regions=["eu", "us"])
    MonitorRegion.objects.create(monitor=opted[3], region="eu", status="down", checked_at=timezone.now())
    MonitorRegion.objects.create(monitor=opted[3], region="us", status="up",
                                 checked_at=timezone.now() - timedelta(hours=1))  # stale: unknown, absent

    series = per_monitor(series_of(MonitorCollector().exposition().decode()))

    def extra(monitor: Monitor) -> set:
        return {item for item in series if dict(item[1])["monitor_id"] == str(monitor.pk)} - documented_default(monitor)

    assert extra(plain) == set()
    mid = lambda m, *more: tuple(sorted((("monitor_id", str(m.pk)), *more)))  # noqa: E731
    assert extra(opted[0]) == {("lookout_monitor_status", mid(opted[0], ("status", s))) for s in MonitorStatus.values}
    assert extra(opted[1]) == {("lookout_monitor_last_phase_duration_seconds", mid(opted[1], ("phase", p)))
                               for p in PHASES_MS}
    assert extra(opted[2]) == {("lookout_monitor_open_incidents", mid(opted[2]))}
    assert extra(opted[3]) == {("lookout_monitor_region_up", mid(opted[3], ("region", "eu")))}

    settings.LOOKOUT_MONITOR_METRICS_DETAIL = ["all"]
    everything = per_monitor(series_of(MonitorCollector().exposition().decode()))
    assert {name for name, labels in everything if dict(labels)["monitor_id"] == str(plain.pk)} == {
        f.name for f in DEFAULT_FAMILIES + OPT_IN_FAMILIES} - {"lookout_monitor_region_up"}


def test_an_unknown_detail_for_everyone_fails_fast(settings):
    settings.LOOKOUT_MONITOR_METRICS_DETAIL = ["phases", "histograms"]

    with pytest.raises(Exception, match="LOOKOUT_MONITOR_METRICS_DETAIL: unknown histograms"):
        collector.details_everywhere()


@pytest.mark.django_db
def test_the_api_takes_metrics_and_refuses_unknown_details_with_400(alice_api):
    created = alice_api.post("/api/v1/monitors/", {"name": "x", "url": "https://example.com/", "interval": 60,
                                                   "metrics": ["phases", "status"]}, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["metrics"] == ["phases", "status"]
    assert Monitor.objects.get(pk=created.json()["id"]).metrics == ["phases", "status"]

    for wrong in (["histograms"], ["phases", "phases"], "phases"):
        answer = alice_api.patch(f"/api/v1/monitors/{created.json()['id']}/", {"metrics": wrong}, format="json")
        assert answer.status_code == 400, wrong
        assert list(field_errors(answer)) == ["metrics"], answer.json()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def scrape(port: int, query: str = "") -> tuple[int, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics{query}", headers={"Accept-Encoding": "gzip"})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.headers["Content-Encoding"] == "gzip"
            return answer.status, gzip.decompress(answer.read()).decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@pytest.mark.django_db(transaction=True)
def test_beat_serves_the_refresher_processes_snapshot_over_http(alice, monkeypatch, settings, tmp_path):
    monitors = monitors_seed(alice, 30)
    settings.LOOKOUT_METRICS_SHARDS = 3
    # The refresher is a process of its own: it reads the test database, as beat's child reads beat's.
    url = f"postgres://{connection.settings_dict['USER']}@{connection.settings_dict['HOST']}:" \
          f"{connection.settings_dict['PORT']}/{connection.settings_dict['NAME']}"
    monkeypatch.setenv("DATABASE_URL", url)
    feed = SnapshotFeed(every=1, shards=3, directory=tmp_path,
                        command=[sys.executable, "-m", "lookout.observability.refresher", str(tmp_path), "3"])
    monkeypatch.setattr(refresher_module, "_feed", feed)
    port = free_port()
    server = metrics_server_start(port=port, host="127.0.0.1", include_monitors=True, health=lambda: (True, "ok"))
    try:
        assert "lookout_monitor_collector_up 0.0" in scrape(port, "?shard=0&of=3")[1]  # nothing rendered yet
        feed.poke()
        deadline = time.monotonic() + 60
        while feed.gzipped(shard=2, of=3) is None and time.monotonic() < deadline:
            time.sleep(0.2)
        shards = [scrape(port, f"?shard={index}&of=3") for index in range(3)]
        assert [status for status, _ in shards] == [200, 200, 200]
        ids = [{dict(labels)["monitor_id"] for name, labels in per_monitor(series_of(text))} for _, text in shards]
        assert ids == [{str(m.pk) for m in monitors if m.pk % 3 == index} for index in range(3)]
        assert all("lookout_monitor_collector_up 1.0" in text for _, text in shards)
        assert scrape(port, "?shard=0&of=4")[0] == 400  # not the installation's shard count
        assert scrape(port, "?shard=3&of=3")[0] == 400
        assert per_monitor(series_of(scrape(port)[1])) == set()  # sharded: the whole is not served
    finally:
        feed.stop()
        if server is not None:
            server.shutdown()
    assert os.listdir(tmp_path)


def samples_of(text: str) -> set[tuple[str, tuple, float]]:
    return {(s.name, tuple(sorted(s.labels.items())), s.value) for f in text_string_to_metric_families(text)
            for s in f.samples if "monitor_id" in s.labels}


@pytest.mark.django_db(transaction=True)
def test_the_orm_path_of_other_databases_renders_the_same_series(alice, monkeypatch):
    """lookout dev runs on SQLite, without the PostgreSQL query: its path through the ORM must agree."""
    monitors = monitors_seed(alice, 20)
    Monitor.objects.filter(pk__in=[m.pk for m in monitors[:5]]).update(metrics=["phases", "status", "incidents"])
    postgresql = samples_of(MonitorCollector().exposition().decode())

    monkeypatch.setattr(connection, "vendor", "sqlite")
    other = samples_of(MonitorCollector().exposition().decode())

    assert other == postgresql
    # 20 monitors of KINDS (2 lots of 4 up with TLS, 3 down, 2 pending, 1 paused): 74 default series; the first
    # five (4 up, 1 down: all probed) opt into status (6), phases (5) and incidents (1) each.
    assert len(postgresql) == 2 * (4 * 5 + 3 * 4 + 2 * 1 + 3) + 5 * 12


def test_dashboards_and_rules_name_existing_series_and_opt_in_ones_only_with_a_default_fallback():
    """Each per-monitor name the dashboards and rules use is rendered; a query on an opt-in family either falls back
    to a default one (`or`) or sits in a panel that says which detail it needs."""
    rendered = {f.name for f in FAMILIES} | {MONITORS.name, READ_UP[0], READ_DURATION[0], SNAPSHOT_TIME[0]}
    opt_in = {f.name: f.detail for f in OPT_IN_FAMILIES}
    per_monitor_names = re.compile(r"lookout_monitor|lookout_tls")
    named = metric_names(RULES.read_text())
    for path in DASHBOARDS:
        dashboard = load(path)
        descriptions = {panel["title"]: panel.get("description", "") for panel in panels(dashboard)}
        for query in queries(dashboard):
            names = metric_names(query.expr)
            named |= names
            for name in names & opt_in.keys():
                fallback = " or " in query.expr and names - opt_in.keys()
                documented = f"`{opt_in[name]}` metrics detail" in descriptions.get(query.panel, "")
                assert fallback or documented, f"{query.panel}: {name} is opt-in ({opt_in[name]})"
    assert {name for name in named if per_monitor_names.match(name)} - rendered == set()


def test_the_chart_renders_a_podmonitor_per_shard_of_the_per_monitor_series():
    """beat.metricsShards N: beat's LOOKOUT_METRICS_SHARDS and one PodMonitor per shard, valid as the Operator's CRD."""
    schema = json.loads((Path(__file__).parents[1] / "packaging/schemas/podmonitor-monitoring.coreos.com-v1.json")
                        .read_text())

    sharded = {**VALUE_SETS["monitoring"], "beat": {"metricsShards": 3, "metricsRefreshSeconds": 60}}
    objects = render(sharded)
    shards = [item for item in of_kind(objects, "PodMonitor") if "-monitors-" in item.name]

    assert [item.body["metadata"]["labels"]["lookout.io/metrics-shard"] for item in shards] == ["0", "1", "2"]
    assert [item.body["spec"]["podMetricsEndpoints"][0]["params"] for item in shards] == [
        {"shard": [str(index)], "of": ["3"]} for index in range(3)]
    assert [error.message for item in shards for error in jsonschema.Draft202012Validator(schema).iter_errors(
        item.body)] == []
    beat = next(item for item in of_kind(objects, "Deployment") if item.name.endswith("-beat"))
    env = {e["name"]: e.get("value") for e in beat.body["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert (env["LOOKOUT_METRICS_SHARDS"], env["LOOKOUT_METRICS_CACHE_SECONDS"]) == ("3", "60")
    assert not [item for item in of_kind(render(VALUE_SETS["monitoring"]), "PodMonitor") if "-monitors-" in item.name]
