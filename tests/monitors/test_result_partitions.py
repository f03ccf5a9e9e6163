"""Results on PostgreSQL live in daily partitions; a result of a day without one still lands (default partition)."""

from datetime import UTC, date, datetime, timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from lookout.monitors import services
from lookout.monitors.models import ProbeResult
from lookout.monitors.partitions import (
    DEFAULT_PARTITION,
    partition_create,
    partition_days,
    partition_name,
    partitions_drop,
    partitions_ensure,
)
from lookout.monitors.spec import MonitorSpec

pytestmark = pytest.mark.django_db

NOW = datetime(2027, 3, 10, 12, 30, tzinfo=UTC)  # days no migration made partitions for


@pytest.fixture
def shop(alice):
    return services.monitor_create(owner=alice, spec=MonitorSpec(name="shop", url="https://shop.example/", interval=60))


def home_of(result: ProbeResult) -> str:
    """The partition holding the row."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT tableoid::regclass::text FROM monitors_proberesult WHERE id = %s", [result.pk])
        return cursor.fetchone()[0]


def record(monitor, at: datetime) -> ProbeResult:
    return ProbeResult.objects.create(monitor=monitor, checked_at=at, success=True, response_time_ms=12.0)


def test_the_table_is_partitioned_with_a_key_including_checked_at():
    with connection.cursor() as cursor:
        cursor.execute("SELECT partstrat FROM pg_partitioned_table WHERE partrelid = 'monitors_proberesult'::regclass")
        assert cursor.fetchone() == ("r",)  # range
        cursor.execute("SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                       "WHERE conrelid = 'monitors_proberesult'::regclass AND contype = 'p'")
        assert cursor.fetchone() == ("PRIMARY KEY (id, checked_at)",)


def test_the_coming_week_is_created_ahead_once_and_results_land_in_their_days_partition(shop):
    created = partitions_ensure(now=NOW)

    assert created == [partition_name(NOW.date() + timedelta(days=n)) for n in range(8)]
    assert partitions_ensure(now=NOW) == []  # idempotent
    result = record(shop, NOW)
    assert isinstance(result.id, int) and result.pk == result.id  # an id after create, as before partitioning
    assert home_of(result) == "monitors_proberesult_p20270310"
    bulk = ProbeResult.objects.bulk_create([ProbeResult(monitor=shop, checked_at=NOW + timedelta(days=3),
                                                        success=False, response_time_ms=1.0)])
    assert home_of(bulk[0]) == "monitors_proberesult_p20270313" and bulk[0].pk > result.pk
    assert ProbeResult.objects.get(pk=result.pk).checked_at == NOW


def test_a_result_of_a_day_without_a_partition_lands_in_the_default_one_and_moves_when_its_day_gets_one(shop):
    far = NOW + timedelta(days=400)
    result = record(shop, far)
    assert home_of(result) == DEFAULT_PARTITION

    assert partition_create(far.date())

    assert home_of(result) == partition_name(far.date())
    assert ProbeResult.objects.get(pk=result.pk).checked_at == far
    assert far.date() in partition_days()


def test_partitions_ending_by_a_time_are_dropped_whole_and_later_ones_kept(shop):
    for day in (date(2020, 1, 1), date(2020, 1, 2), date(2020, 1, 3)):
        partition_create(day)
    old = record(shop, datetime(2020, 1, 1, 23, 59, tzinfo=UTC))
    kept = record(shop, datetime(2020, 1, 2, 0, 0, tzinfo=UTC))
    connection.check_constraints()  # the test's one transaction: a table with pending FK checks cannot go

    assert partitions_drop(before=datetime(2020, 1, 2, 12, 0, tzinfo=UTC)) == ["monitors_proberesult_p20200101"]

    assert list(ProbeResult.objects.filter(pk__in=[old.pk, kept.pk]).values_list("pk", flat=True)) == [kept.pk]
    assert date(2020, 1, 1) not in partition_days() and date(2020, 1, 2) in partition_days()


def test_deleting_a_monitor_deletes_its_results_in_every_partition(shop, alice):
    partitions_ensure(now=NOW)
    for days in (0, 1, 400):
        record(shop, NOW + timedelta(days=days))
    other = services.monitor_create(owner=alice, spec=MonitorSpec(name="other", url="https://other.example/",
                                                                  interval=60))
    record(other, NOW)

    services.monitor_delete(monitor=shop)

    assert list(ProbeResult.objects.values_list("monitor_id", flat=True)) == [other.pk]


@pytest.mark.django_db(transaction=True)
def test_the_migration_to_a_partitioned_table_keeps_every_existing_result_and_its_id():
    executor = MigrationExecutor(connection)
    before, after = [("monitors", "0003_state_machine_channels")], executor.loader.graph.leaf_nodes()
    executor.migrate(before)
    old_apps = executor.loader.project_state(before).apps
    User = old_apps.get_model("auth", "User")
    PeriodicTask = old_apps.get_model("django_celery_beat", "PeriodicTask")
    Monitor, Result = old_apps.get_model("monitors", "Monitor"), old_apps.get_model("monitors", "ProbeResult")
    owner = User.objects.create(username="old")
    monitor = Monitor.objects.create(owner=owner, name="old", url="https://old.example/", interval=60, timeout=5,
                                     periodic_task=PeriodicTask.objects.create(name="monitor:old", task="x"))
    now = datetime.now(UTC)
    ages = (0, 1, 2, 45)  # the last one is older than retention: the default partition keeps it
    rows = {Result.objects.create(monitor=monitor, checked_at=now - timedelta(days=days), success=True,
                                  response_time_ms=1.0).pk: now - timedelta(days=days) for days in ages}

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(after)

    assert dict(ProbeResult.objects.values_list("pk", "checked_at")) == rows
    assert home_of(ProbeResult.objects.get(pk=max(rows))) == DEFAULT_PARTITION
    assert home_of(ProbeResult.objects.get(pk=min(rows))) == partition_name(now.date())
    newer = ProbeResult.objects.create(monitor_id=monitor.pk, checked_at=now, success=True, response_time_ms=1.0)
    assert newer.pk > max(rows)  # the id sequence goes on
