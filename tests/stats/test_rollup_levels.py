"""The set-based rollups on PostgreSQL: idempotent, late results rolled in, the daily level the sum of its hours,
long windows answered from daily rows, crowded monitor-hours exact."""

import random
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.db.models import Sum
from django.test.utils import CaptureQueriesContext

from lookout.monitors import services
from lookout.monitors.models import ProbeResult
from lookout.monitors.spec import MonitorSpec
from lookout.stats.buckets import BUCKET_FIELDS, histogram
from lookout.stats.models import DailyRollup, ResultRollup
from lookout.stats.retention import rollups_prune
from lookout.stats.rollups import COUNTS, hours_rollup, rolled_until, rollup_run
from lookout.stats.selectors import monitor_stats, window_tally

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 10, 12, 30, tzinfo=UTC)


@pytest.fixture
def shop(alice):
    return services.monitor_create(owner=alice, spec=MonitorSpec(name="shop", url="https://shop.example/", interval=60))


def seed(monitor, *, start: datetime, end: datetime, every: timedelta, region: str = "") -> int:
    rng, rows, at, index = random.Random(3), [], start, 0
    while at < end:
        success = index % 7 != 0
        rows.append(ProbeResult(monitor=monitor, checked_at=at, success=success, region=region,
                                response_time_ms=rng.lognormvariate(4, 0.8) if success else 10000.0))
        at += every
        index += 1
    ProbeResult.objects.bulk_create(rows, batch_size=2000)
    return len(rows)


def rows_of(model) -> list[tuple]:
    key = "hour" if model is ResultRollup else "day"
    return list(model.objects.order_by("monitor_id", key, "region").values_list("monitor_id", key, "region", *COUNTS))


def test_on_postgresql_the_rollup_is_the_sql_path():
    assert connection.vendor == "postgresql"  # the suite's database: what these tests are about


def test_rolling_hours_up_again_gives_the_same_rows(shop, bob):
    other = services.monitor_create(owner=bob, spec=MonitorSpec(name="b", url="https://b.example/", interval=60))
    seed(shop, start=NOW - timedelta(days=2), end=NOW, every=timedelta(minutes=1))
    seed(shop, start=NOW - timedelta(days=2), end=NOW, every=timedelta(minutes=2), region="eu")
    seed(other, start=NOW - timedelta(days=2), end=NOW, every=timedelta(seconds=30))
    rollup_run(now=NOW, max_hours=1000)
    hourly, daily = rows_of(ResultRollup), rows_of(DailyRollup)

    hours_rollup(start=NOW - timedelta(days=2), end=rolled_until())
    rollup_run(now=NOW, max_hours=1000)

    assert rows_of(ResultRollup) == hourly and rows_of(DailyRollup) == daily
    assert len(hourly) == 3 * 48 and len(daily) == 3 * 2  # 03-08 (from 12:00) and 03-09 are over, 03-10 is not


def test_the_daily_level_is_the_sum_of_its_hours(shop):
    seed(shop, start=NOW - timedelta(days=3), end=NOW, every=timedelta(minutes=1))
    rollup_run(now=NOW, max_hours=1000)

    for daily in DailyRollup.objects.all():
        start = datetime(daily.day.year, daily.day.month, daily.day.day, tzinfo=UTC)
        hours = ResultRollup.objects.filter(monitor=daily.monitor, region=daily.region, hour__gte=start,
                                            hour__lt=start + timedelta(days=1))
        sums = hours.aggregate(**{column: Sum(column) for column in COUNTS})
        assert [getattr(daily, column) for column in COUNTS] == [sums[column] for column in COUNTS]
        assert hours.count() == 24 or start < NOW - timedelta(days=3) + timedelta(days=1)
    assert DailyRollup.objects.count() == 3  # 03-07 (partial: results from 12:30), 03-08, 03-09


def test_a_late_result_of_a_rolled_up_hour_is_rolled_in_by_the_next_run_with_its_day(shop, settings):
    settings.LOOKOUT_ROLLUP_LATE_HOURS = 3
    seed(shop, start=NOW - timedelta(days=1), end=NOW, every=timedelta(minutes=1))
    midnight = datetime(2026, 3, 10, tzinfo=UTC)
    rollup_run(now=midnight + timedelta(hours=1), max_hours=1000)  # 23:00 of 03-09 is rolled, and its day
    before = monitor_stats(monitor=shop, window="24h", now=midnight)

    # A region's agent delivers a result of 23:00 late, after that hour was rolled up: it was a failure.
    ProbeResult.objects.create(monitor=shop, checked_at=midnight - timedelta(minutes=30), success=False,
                               response_time_ms=10000.0, region="")
    rollup_run(now=midnight + timedelta(hours=1, minutes=20))

    hour = ResultRollup.objects.get(monitor=shop, hour=midnight - timedelta(hours=1))
    day = DailyRollup.objects.get(monitor=shop, day=(midnight - timedelta(days=1)).date())
    assert (hour.checks, hour.failures) == (61, 10)
    assert day.checks == 24 * 60 - (12 * 60 + 30) + 1  # results from 12:30 on 03-09, plus the late one
    after = monitor_stats(monitor=shop, window="24h", now=midnight)
    assert (after["checks"], after["failures"]) == (before["checks"] + 1, before["failures"] + 1)


def test_late_results_older_than_the_late_window_stay_out(shop, settings):
    settings.LOOKOUT_ROLLUP_LATE_HOURS = 1
    seed(shop, start=NOW - timedelta(hours=6), end=NOW, every=timedelta(minutes=1))
    rollup_run(now=NOW, max_hours=1000)
    ProbeResult.objects.create(monitor=shop, checked_at=NOW - timedelta(hours=5, minutes=30), success=True,
                               response_time_ms=1.0)

    rollup_run(now=NOW + timedelta(minutes=5))

    assert ResultRollup.objects.get(monitor=shop, hour=datetime(2026, 3, 10, 7, tzinfo=UTC)).checks == 60


def test_a_400_day_window_is_answered_from_daily_rows(shop, settings):
    settings.LOOKOUT_HOURLY_ROLLUP_RETENTION_DAYS = 7
    days, every = 400, 10
    # Every 10th day of 400, one result at 06:00 and one at 18:00 (a failure); 40 days (and partitions).
    ProbeResult.objects.bulk_create(
        [ProbeResult(monitor=shop, checked_at=NOW - timedelta(days=n) + timedelta(hours=h - 12, minutes=-30),
                     success=h == 6, response_time_ms=80.0) for n in range(1, days, every) for h in (6, 18)])
    rollup_run(now=NOW, max_hours=24 * 500)
    assert DailyRollup.objects.count() == days // every  # each day that had results
    rollups_prune(now=NOW)  # hourly rows older than 7 days go (their days' partitions)
    ProbeResult.objects.all().delete()  # and every raw result: only rollups remain
    assert ResultRollup.objects.filter(hour__lt=NOW - timedelta(days=8)).count() == 0

    with CaptureQueriesContext(connection) as queries:
        tally = window_tally(monitor=shop, start=NOW - timedelta(days=days), now=NOW)

    assert (tally.checks, tally.failures) == (2 * days // every, days // every)
    assert tally.latency_count == days // every and tally.buckets == histogram([80.0] * (days // every))
    assert any("stats_dailyrollup" in query["sql"] for query in queries.captured_queries)
    assert len(queries) <= 5  # progress, daily sums, hourly sums, raw edge (and nothing per day)


def test_a_monitor_hour_of_more_results_than_the_packed_counts_hold_is_exact(shop):
    hour = datetime(2026, 3, 10, 9, tzinfo=UTC)
    rng = random.Random(5)
    latencies = [rng.choice([3.0, 55.0, 250.0]) for _ in range(1500)]  # 1,500 in the hour: past 10 bits
    ProbeResult.objects.bulk_create([ProbeResult(monitor=shop, checked_at=hour + timedelta(seconds=2 * i),
                                                 success=True, response_time_ms=ms) for i, ms in enumerate(latencies)])

    hours_rollup(start=hour, end=hour + timedelta(hours=1))

    rollup = ResultRollup.objects.get(monitor=shop)
    assert (rollup.checks, rollup.latency_count) == (1500, 1500)
    assert rollup.latency_buckets == histogram(latencies)
    assert [getattr(rollup, field) for field in BUCKET_FIELDS].count(None) == len(BUCKET_FIELDS) - 3  # empty: NULL
