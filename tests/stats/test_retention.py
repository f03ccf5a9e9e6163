"""Retention: raw results and rollups are pruned in bounded batches, and statistics of old windows survive."""

from datetime import UTC, datetime, timedelta

import pytest

from lookout.alerting.models import AlertEvent, Channel, DegradedEpisode, Incident, Notification
from lookout.monitors import services
from lookout.monitors.models import IssuedTask, ProbeResult
from lookout.monitors.spec import MonitorSpec
from lookout.stats.models import DailyRollup, ResultRollup
from lookout.stats.retention import results_prune, rollups_prune
from lookout.stats.rollups import rolled_until, rollup_run
from lookout.stats.selectors import monitor_stats

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 6, 1, 12, 30, tzinfo=UTC)


@pytest.fixture
def shop(alice):
    return services.monitor_create(owner=alice, spec=MonitorSpec(name="shop", url="https://shop.example/", interval=60))


def results_at(monitor, *moments: datetime, success: bool = True) -> None:
    ProbeResult.objects.bulk_create([ProbeResult(monitor=monitor, checked_at=moment, success=success,
                                                 response_time_ms=50.0) for moment in moments])


def days_ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def test_results_older_than_the_retention_are_pruned_and_the_statistics_of_old_windows_stay(shop):
    results_at(shop, *(days_ago(d) for d in (60, 45, 31, 29, 1, 0.01)))
    results_at(shop, days_ago(40), success=False)
    rollup_run(now=NOW, max_hours=10000)
    before = monitor_stats(monitor=shop, window="90d", now=NOW)

    assert results_prune(now=NOW).rows_deleted == 4

    assert ProbeResult.objects.count() == 3
    after = monitor_stats(monitor=shop, window="90d", now=NOW)
    assert (after["checks"], after["failures"], after["uptime_percent"]) == (before["checks"], before["failures"],
                                                                            before["uptime_percent"]) == (7, 1,
                                                                                                          85.7143)
    assert after["response_time_ms"] == before["response_time_ms"]


def test_results_of_hours_not_rolled_up_yet_are_never_pruned(shop):
    results_at(shop, days_ago(60), days_ago(50))
    assert results_prune(now=NOW).rows_deleted == 0  # nothing is rolled up at all

    rollup_run(now=days_ago(55), max_hours=10000)  # rolled up to 55 days ago only
    assert results_prune(now=NOW).rows_deleted == 1
    assert list(ProbeResult.objects.values_list("checked_at", flat=True)) == [days_ago(50)]
    assert rolled_until() <= days_ago(55)


def test_pruning_deletes_in_bounded_batches_and_resumes_at_the_next_run(shop):
    results_at(shop, *(days_ago(40) + timedelta(minutes=m) for m in range(7)))
    rollup_run(now=NOW, max_hours=10000)

    assert results_prune(now=NOW, batch=2, max_batches=2).rows_deleted == 4
    assert results_prune(now=NOW, batch=2, max_batches=2).rows_deleted == 3
    assert results_prune(now=NOW, batch=2, max_batches=2).rows_deleted == 0


def test_rollups_incidents_and_alert_history_older_than_their_retention_are_pruned(shop, alice, settings):
    settings.LOOKOUT_ROLLUP_RETENTION_DAYS = 100
    results_at(shop, days_ago(150), days_ago(50))
    rollup_run(now=NOW, max_hours=10000)
    old = Incident.objects.create(monitor=shop, started_at=days_ago(150), detected_at=days_ago(150),
                                  ended_at=days_ago(149))
    recent = Incident.objects.create(monitor=shop, started_at=days_ago(50), detected_at=days_ago(50),
                                     ended_at=days_ago(49))
    channel = Channel.objects.create(owner=alice, name="c", kind="email", address="a@example.com")
    Notification.objects.create(channel=channel, incident=old, event=AlertEvent.MONITOR_DOWN, payload={},
                                due_at=days_ago(150))
    test_message = Notification.objects.create(channel=channel, event=AlertEvent.TEST, payload={}, due_at=NOW)
    Notification.objects.filter(pk=test_message.pk).update(created_at=days_ago(120))
    DegradedEpisode.objects.create(started_at=days_ago(120), ended_at=days_ago(120), failing=10, probed=12)

    pruned = rollups_prune(now=NOW)

    # The rollups of 150 days ago go as their day's (hourly) and month's (daily) partitions, dropped whole.
    assert pruned.partitions_dropped == ["stats_resultrollup_p20260102", "stats_dailyrollup_p202601"]
    assert pruned.rows_deleted == 4  # one incident (+ its notification), the test message, the episode
    assert list(ResultRollup.objects.values_list("hour", flat=True)) == [days_ago(50).replace(minute=0)]
    assert list(DailyRollup.objects.values_list("day", flat=True)) == [days_ago(50).date()]
    assert list(Incident.objects.all()) == [recent]
    assert not Notification.objects.exists() and not DegradedEpisode.objects.exists()
    assert monitor_stats(monitor=shop, window="90d", now=NOW)["incidents"] == 1


def test_check_now_task_ids_are_pruned_once_their_stored_result_expired_after_a_day(shop, alice):
    old = IssuedTask.objects.create(task_id="old", owner=alice, monitor=shop)
    IssuedTask.objects.create(task_id="recent", owner=alice, monitor=shop)
    IssuedTask.objects.filter(pk=old.pk).update(created_at=NOW - timedelta(days=1, minutes=1))
    IssuedTask.objects.exclude(pk=old.pk).update(created_at=NOW - timedelta(hours=23))

    assert rollups_prune(now=NOW).rows_deleted == 1

    assert list(IssuedTask.objects.values_list("task_id", flat=True)) == ["recent"]


def test_on_postgresql_expired_days_are_dropped_as_partitions_and_only_the_straddling_day_row_by_row(shop):
    from django.db import connection

    from lookout.monitors.partitions import partition_create, partition_days, partition_name

    cutoff = NOW - timedelta(days=30)  # 2026-05-02 12:30
    days = [cutoff.date() - timedelta(days=n) for n in range(-1, 4)]  # 05-03 (kept) back to 04-29
    for day in days:
        partition_create(day)
    results_at(shop, *(datetime(d.year, d.month, d.day, 6, tzinfo=UTC) for d in days))  # 06:00 of each day
    results_at(shop, cutoff + timedelta(hours=1))  # the straddling day, after the cutoff: kept
    results_at(shop, days_ago(1))
    rollup_run(now=NOW, max_hours=10000)
    connection.check_constraints()  # the test's one transaction: a table with pending FK checks cannot go

    pruned = results_prune(now=NOW)

    assert pruned.partitions_dropped == [partition_name(day) for day in sorted(days[2:])]  # 04-29 to 05-01
    assert pruned.rows_deleted == 1  # 05-02 06:00, in the partition straddling the cutoff
    assert sorted(ProbeResult.objects.values_list("checked_at", flat=True)) == [
        cutoff + timedelta(hours=1), datetime(2026, 5, 3, 6, tzinfo=UTC), days_ago(1)]
    assert {cutoff.date(), days[0]} <= set(partition_days()) and not set(days[2:]) & set(partition_days())
    assert pruned.partitions_created == [partition_name(NOW.date() + timedelta(days=n)) for n in range(8)]


def test_partitions_of_hours_not_rolled_up_yet_are_kept(shop):
    from lookout.monitors.partitions import partition_create, partition_days

    old = (NOW - timedelta(days=50)).date()
    partition_create(old)
    results_at(shop, days_ago(50))

    assert results_prune(now=NOW).partitions_dropped == []  # nothing rolled up: not even whole old days go

    assert old in partition_days() and ProbeResult.objects.count() == 1
