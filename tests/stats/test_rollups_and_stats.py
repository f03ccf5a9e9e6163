"""Hourly rollups and the stats endpoint: the same answers as the raw results, fast over months."""

import random
import statistics
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from lookout.alerting.models import Incident
from lookout.monitors import services
from lookout.monitors.models import ProbeResult
from lookout.monitors.spec import MonitorSpec
from lookout.stats.buckets import EDGES_MS, bucket_index, histogram, percentile
from lookout.stats.models import ResultRollup
from lookout.stats.rollups import hours_rollup, rolled_until, rollup_run
from lookout.stats.selectors import monitor_stats

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 10, 12, 30, tzinfo=UTC)


def monitor(owner, name: str = "shop"):
    return services.monitor_create(owner=owner, spec=MonitorSpec(name=name, url="https://shop.example/", interval=60))


def seed(monitor, *, start: datetime, end: datetime, every: timedelta, fail_every: int = 10,
         rng: random.Random | None = None) -> list[ProbeResult]:
    rng = rng or random.Random(7)
    rows, at, index = [], start, 0
    while at < end:
        success = index % fail_every != 0
        rows.append(ProbeResult(monitor=monitor, checked_at=at, success=success, status_code=200 if success else 503,
                                response_time_ms=rng.lognormvariate(4, 0.6) if success else 10000.0,
                                error="" if success else "HTTP 503"))
        at += every
        index += 1
    return ProbeResult.objects.bulk_create(rows)


def raw(monitor, start: datetime, end: datetime) -> tuple[int, int, list[float]]:
    results = list(ProbeResult.objects.filter(monitor=monitor, checked_at__gte=start, checked_at__lte=end))
    return len(results), sum(not r.success for r in results), [r.response_time_ms for r in results if r.success]


def exact(values: list[float], q: float) -> float:
    return sorted(values)[max(0, int(round(q * len(values))) - 1)]


def within_bucket(estimate: float, value: float) -> bool:
    """The estimate lies in the same bucket as the true value (or an adjacent one, at a bucket boundary)."""
    return abs(bucket_index(estimate) - bucket_index(value)) <= 1


def test_percentiles_come_from_bucket_counts():
    assert percentile([0] * 49, 0.5) is None
    values = [3.2] * 100
    p50 = percentile(histogram(values), 0.5)
    assert 3.0 < p50 <= 4.0  # inside the (3, 4] bucket
    assert percentile(histogram([10**7]), 0.99) == EDGES_MS[-1]  # beyond the last edge: the edge


def test_an_hour_rolls_up_to_the_raw_results_counts_and_latency_buckets(alice):
    shop = monitor(alice)
    hour = datetime(2026, 3, 10, 9, tzinfo=UTC)
    seed(shop, start=hour - timedelta(minutes=5), end=hour + timedelta(minutes=65), every=timedelta(seconds=30))

    assert hours_rollup(start=hour, end=hour + timedelta(hours=1)) == 1
    assert hours_rollup(start=hour, end=hour + timedelta(hours=1)) == 1  # idempotent

    rollup = ResultRollup.objects.get(monitor=shop)
    checks, failures, latencies = raw(shop, hour, hour + timedelta(minutes=59, seconds=59))
    assert (rollup.checks, rollup.failures, rollup.latency_count) == (checks, failures, len(latencies)) == (
        120, 12, 108)
    assert rollup.latency_sum_ms == pytest.approx(sum(latencies))
    assert rollup.latency_buckets == histogram(latencies)


def test_rollup_runs_only_settled_hours_and_remembers_where_it_stopped(alice):
    shop = monitor(alice)
    seed(shop, start=NOW - timedelta(hours=5), end=NOW, every=timedelta(minutes=1))

    assert rollup_run(now=NOW, max_hours=2) == 2  # 07:00 and 08:00
    assert rolled_until() == datetime(2026, 3, 10, 9, tzinfo=UTC)
    assert rollup_run(now=NOW) == 3  # up to 12:00: the current hour is not over
    assert rolled_until() == datetime(2026, 3, 10, 12, tzinfo=UTC)
    assert rollup_run(now=NOW + timedelta(minutes=31)) == 0  # 13:01: 12:00 is over but results may still arrive
    assert rollup_run(now=NOW + timedelta(minutes=40)) == 1
    assert ResultRollup.objects.filter(monitor=shop).count() == 6


@pytest.mark.parametrize("window", ["1h", "24h", "7d"])
def test_stats_agree_with_the_raw_results_whatever_is_rolled_up(alice, window):
    shop = monitor(alice)
    seed(shop, start=NOW - timedelta(days=8), end=NOW, every=timedelta(minutes=5))
    rollup_run(now=NOW, max_hours=1000)
    assert rolled_until() == datetime(2026, 3, 10, 12, tzinfo=UTC)  # the current hour comes from raw results

    stats = monitor_stats(monitor=shop, window=window, now=NOW)

    start = stats["start"]
    checks, failures, latencies = raw(shop, start, NOW)
    assert (stats["checks"], stats["failures"]) == (checks, failures)
    assert stats["uptime_percent"] == pytest.approx(100 * (checks - failures) / checks, abs=1e-4)
    assert stats["response_time_ms"]["avg"] == pytest.approx(statistics.fmean(latencies), abs=1e-3)
    for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
        assert within_bucket(stats["response_time_ms"][name], exact(latencies, q)), name


def test_a_long_window_reads_hourly_rollups_not_raw_rows(alice):
    shop = monitor(alice)
    seed(shop, start=NOW - timedelta(days=31), end=NOW, every=timedelta(minutes=10))
    rollup_run(now=NOW, max_hours=1000)
    expected = raw(shop, NOW - timedelta(days=90), NOW)
    ProbeResult.objects.filter(checked_at__lt=rolled_until()).delete()  # only rollups remain for those hours

    with CaptureQueriesContext(connection) as queries:
        stats = monitor_stats(monitor=shop, window="90d", now=NOW)

    assert (stats["checks"], stats["failures"]) == expected[:2]
    assert stats["response_time_ms"]["avg"] == pytest.approx(statistics.fmean(expected[2]), abs=1e-3)
    assert len(queries) <= 8


def test_downtime_and_incidents_come_from_incidents_overlapping_the_window(alice):
    shop = monitor(alice)
    Incident.objects.create(monitor=shop, started_at=NOW - timedelta(hours=2), detected_at=NOW - timedelta(hours=2),
                            ended_at=NOW - timedelta(minutes=30), cause="HTTP 503")
    Incident.objects.create(monitor=shop, started_at=NOW - timedelta(minutes=10), detected_at=NOW, cause="timeout")
    Incident.objects.create(monitor=shop, started_at=NOW - timedelta(days=3), detected_at=NOW - timedelta(days=3),
                            ended_at=NOW - timedelta(days=3) + timedelta(minutes=5))

    stats = monitor_stats(monitor=shop, window="1h", now=NOW)

    # 30 minutes of the first (clipped to the window) and the 10 minutes so far of the open one.
    assert (stats["downtime_seconds"], stats["incidents"]) == (2400.0, 2)
    assert monitor_stats(monitor=shop, window="7d", now=NOW)["incidents"] == 3
    assert stats["uptime_percent"] is None and stats["response_time_ms"]["p95"] is None  # no probes at all


def test_the_stats_endpoint_answers_the_owner_for_each_window_and_400s_others(alice_api, alice, bob_api):
    shop = monitor(alice)
    seed(shop, start=datetime.now(UTC) - timedelta(hours=2), end=datetime.now(UTC), every=timedelta(minutes=1))
    url = f"/api/v1/monitors/{shop.pk}/stats/"

    for window in ("1h", "24h", "7d", "30d", "90d"):
        response = alice_api.get(url, {"window": window})
        assert response.status_code == 200, response.content
        body = response.json()
        assert set(body) == {"monitor", "window", "start", "end", "uptime_percent", "checks", "failures",
                             "downtime_seconds", "incidents", "response_time_ms"}
        assert set(body["response_time_ms"]) == {"avg", "p50", "p95", "p99"}
    assert alice_api.get(url).json()["window"] == "24h"
    assert alice_api.get(url, {"window": "1h"}).json()["checks"] in (60, 61)
    bad = alice_api.get(url, {"window": "2h"})
    assert bad.status_code == 400 and "window" in bad.json()
    assert bob_api.get(url).status_code == 404
