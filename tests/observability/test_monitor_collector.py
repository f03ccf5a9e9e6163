"""The per-monitor collector: open incidents, and a database error that leaves the scrape standing."""

import gzip
import uuid
from urllib.parse import urlsplit

import pytest
from django.apps import apps
from django.db import OperationalError
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from lookout.monitors import services
from lookout.monitors.spec import MonitorSpec
from lookout.observability import collector as collector_module
from lookout.observability import refresher
from lookout.observability.collector import MonitorCollector
from lookout.probes import results
from lookout.probes.results import ProbeRecord


def by_name(collector: MonitorCollector) -> dict[str, dict[tuple, float]]:
    return {family.name: {tuple(sorted(s.labels.items())): s.value for s in family.samples}
            for family in collector.collect()}


# transaction=True: the collector closes its connection after each read, as its scrape threads must.
@pytest.mark.django_db(transaction=True)
def test_open_incidents_are_counted_per_monitor(alice, settings):
    settings.LOOKOUT_MONITOR_METRICS_DETAIL = ["incidents"]  # opt-in
    down = services.monitor_create(owner=alice, spec=MonitorSpec(name="down", url="https://example.com/", interval=60))
    fine = services.monitor_create(owner=alice, spec=MonitorSpec(name="fine", url="https://example.org/", interval=60))
    incident = apps.get_model("alerting", "Incident")
    now = timezone.now()
    incident.objects.create(monitor=down, started_at=now, detected_at=now, ended_at=now)  # closed: not counted
    incident.objects.create(monitor=down, started_at=now, detected_at=now)

    series = by_name(MonitorCollector(cache_seconds=0))

    assert series["lookout_monitor_open_incidents"] == {(("monitor_id", str(down.pk)),): 1.0,
                                                        (("monitor_id", str(fine.pk)),): 0.0}
    assert series["lookout_monitor_collector_up"] == {(): 1.0}


@pytest.mark.django_db(transaction=True)
def test_a_database_error_drops_the_per_monitor_series_and_says_so(alice, monkeypatch, caplog):
    services.monitor_create(owner=alice, spec=MonitorSpec(name="any", url="https://example.com/", interval=60))
    collector = MonitorCollector(cache_seconds=0)
    assert by_name(collector)["lookout_monitor_info"]

    def unavailable(everywhere):
        raise OperationalError("connection refused")

    monkeypatch.setattr(collector_module, "_rows_sql", unavailable)
    series = by_name(collector)

    assert series["lookout_monitor_collector_up"] == {(): 0.0}
    assert series["lookout_monitor_info"] == series["lookout_monitor_status"] == {}
    assert "per-monitor metrics unavailable: database error (connection refused)" in caplog.text


def test_the_refresh_interval_and_shards_come_from_the_settings(monkeypatch, settings):
    settings.LOOKOUT_METRICS_CACHE_SECONDS = 30
    settings.LOOKOUT_METRICS_SHARDS = 4
    monkeypatch.setattr(refresher, "_feed", None)

    feed = refresher.snapshot_feed()

    assert (feed.every, feed.shards, feed.stale_after) == (30, 4, 90)
    monkeypatch.setattr(refresher, "_feed", None)


@pytest.mark.django_db(transaction=True)
def test_the_fast_text_rendering_carries_exactly_the_collected_series(alice):
    tricky = services.monitor_create(owner=alice, spec=MonitorSpec(name='say "hi"\\ \nnow',
                                                                   url="https://example.com/", interval=60))
    results.probe_result_record(monitor_id=tricky.pk, record=ProbeRecord(
        checked_at=timezone.now(), success=True, status_code=200, response_time_ms=12.5, error="",
        task_id=str(uuid.uuid4()), phases={"dns": 1.0, "connect": 2.0, "processing": 3.0, "transfer": 4.5}))
    services.monitor_pause(monitor=services.monitor_create(owner=alice, spec=MonitorSpec(name="paused",
                                                                                         url="tcp://db.internal:5432",
                                                           type="tcp", interval=60)))
    collector = MonitorCollector(cache_seconds=3600)

    collected = {(s.name, tuple(sorted(s.labels.items())), s.value)
                 for family in collector.collect() for s in family.samples}
    text = collector.exposition()
    rendered = {(s.name, tuple(sorted(s.labels.items())), s.value)
                for family in text_string_to_metric_families(text.decode()) for s in family.samples}

    assert rendered == collected
    assert ("name", 'say "hi"\\ \nnow') in {label for _, labels, _ in rendered for label in labels}
    assert gzip.decompress(collector.exposition(gzipped=True)) == text


def test_a_gzipped_scrape_is_one_stream_of_gzip_members(monkeypatch):
    from lookout.observability import exposition

    class Fixed:
        shards = 1

        def gzipped(self, *, shard: int = 0, of: int = 1) -> bytes:
            return gzip.compress(b"lookout_monitor_collector_up 1.0\n")

    monkeypatch.setattr(exposition, "snapshot_feed", Fixed)
    monkeypatch.setattr(exposition, "generate_latest", lambda registry: b"lookout_beat_lock_held 1.0\n")
    plain, _ = exposition.metrics_payload(include_monitors=True)
    packed, _ = exposition.metrics_payload(include_monitors=True, gzipped=True)

    assert gzip.decompress(packed) == plain
    assert plain == b"lookout_beat_lock_held 1.0\nlookout_monitor_collector_up 1.0\n"


HOST_PARTS = st.sampled_from(["example.com", "EXAMPLE.org", "127.0.0.1", "[::1]", "[FE80::1%25Eth0]", "a-b.c", ""])


@given(scheme=st.sampled_from(["http", "https", "HTTP"]), userinfo=st.sampled_from(["", "u@", "u:p@", "u:p@x@"]),
       host=HOST_PARTS, port=st.sampled_from(["", ":8080", ":"]),
       rest=st.sampled_from(["", "/", "/a/b?q=1#f", "?x=a@b", "#h:1", "/p%20q", "/x//y"]))
def test_the_host_label_is_what_urlsplit_calls_the_hostname(scheme, userinfo, host, port, rest):
    url = f"{scheme}://{userinfo}{host}{port}{rest}"
    assert collector_module._host(url) == (urlsplit(url).hostname or "")


@pytest.mark.parametrize("url", ["http://[::1", "http://ex ample.com/", "https://\texample.com/", "no-scheme",
                                 "http:/x//y/z", "a b://h/"])
def test_the_host_of_a_url_urlsplit_refuses_or_reads_oddly_is_urlsplits_answer_or_empty(url):
    try:
        expected = urlsplit(url).hostname or ""
    except ValueError:
        expected = ""
    assert collector_module._host(url) == expected
