"""probe_results_record's set-based path on PostgreSQL (lookout.probes.recording): a worker's batch stored by COPY
with ids from the sequence, looked up once for task ids recorded already, its monitors written by one UPDATE, and
only the results that change a monitor's health going through incidents and alerts."""

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from django.db import IntegrityError, connection
from django.test.utils import CaptureQueriesContext

from lookout.alerting.models import AlertEvent, DegradedEpisode, Incident, Notification
from lookout.monitors import services
from lookout.monitors.models import Monitor, MonitorStatus, ProbeResult
from lookout.probes.results import probe_result_record, probe_results_record
from support.alerting import webhook_channel
from support.results import new_monitor, record

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
MINUTE = timedelta(seconds=60)


def stored(result_id: int) -> tuple:
    row = ProbeResult.objects.get(pk=result_id)
    return (row.monitor_id, row.checked_at, row.success, row.status_code, row.response_time_ms, row.error,
            row.task_id, row.phases, row.tls, row.failed_condition, row.region)


def test_the_path_is_the_postgresql_one():
    assert connection.vendor == "postgresql"  # the rest of this module pins the COPY path, not SQLite's ORM one


def test_a_batch_returns_each_results_id_in_the_order_given_and_stores_every_field(alice):
    monitors = [new_monitor(alice, name=f"m{n}") for n in range(3)]
    tls = {"subject": "CN=a", "issuer": "CN=ca", "not_after": "2026-04-01T00:00:00+00:00"}
    records = [(monitors[2].pk, record(at=T0, task_id="c", phases={"dns": 1.5, "connect": 2.25})),
               (monitors[0].pk, record(at=T0, success=False, task_id="a", failed_condition="body ~ ok", tls=tls,
                                       region="home")),
               (monitors[1].pk, record(at=T0, task_id="b", elapsed_ms=7.125))]

    results = probe_results_record(records=records)

    assert [result.task_id for result in results] == ["c", "a", "b"]
    ids = [result.pk for result in results]
    assert len(set(ids)) == 3 and ids == sorted(ids)  # from the sequence, in the order given
    for result, (_, given) in zip(results, records, strict=True):
        assert stored(result.pk) == (result.monitor_id, given.checked_at, given.success, given.status_code,
                                     given.response_time_ms, given.error, given.task_id, dict(given.phases),
                                     dict(given.tls) if given.tls else None, given.failed_condition, given.region)
        # What probe_run hands back for a check-now, read from the returned instance.
        assert (result.id, result.success, result.status_code, result.phases) == (
            result.pk, given.success, given.status_code, dict(given.phases))


def test_a_returned_result_knows_its_monitor_without_a_query(alice):
    monitor = new_monitor(alice)

    [result] = probe_results_record(records=[(monitor.pk, record(at=T0))])

    with CaptureQueriesContext(connection) as queries:
        assert result.monitor.pk == monitor.pk
    assert len(queries) == 0


def test_long_errors_and_conditions_are_cut_to_their_columns(alice):
    monitor = new_monitor(alice)

    long = dataclasses.replace(record(at=T0, success=False), error="x" * 5000, failed_condition="y" * 900)

    [result] = probe_results_record(records=[(monitor.pk, long)])

    row = ProbeResult.objects.get(pk=result.pk)
    assert (len(row.error), len(row.failed_condition)) == (2000, 500)


def test_a_task_id_twice_in_a_batch_and_one_stored_already_are_each_stored_once(alice):
    monitor, other = new_monitor(alice, failure_threshold=2), new_monitor(alice)
    first = probe_result_record(monitor_id=monitor.pk, record=record(at=T0, success=False, task_id="run-1",
                                                                     phases={"dns": 3.0}))

    results = probe_results_record(records=[
        (monitor.pk, record(at=T0 + MINUTE, success=False, task_id="run-1")),  # stored already
        (other.pk, record(at=T0 + MINUTE, task_id="run-9")),
        (other.pk, record(at=T0 + MINUTE, task_id="run-9")),  # the same delivery twice in the batch
        (monitor.pk, record(at=T0 + 2 * MINUTE, success=False, task_id="run-2")),
    ])

    # The first attempt's result, as stored (not the repeat's facts), and one row per task id.
    assert (results[0].pk, results[0].checked_at, results[0].phases) == (first.pk, T0, {"dns": 3.0})
    assert results[1].pk == results[2].pk
    assert sorted(ProbeResult.objects.values_list("task_id", flat=True)) == ["run-1", "run-2", "run-9"]
    # run-1's failure counted once: with run-2, two in a row confirm the outage — not three.
    monitor.refresh_from_db()
    assert (monitor.status, monitor.consecutive_failures) == (MonitorStatus.DOWN, 2)
    assert Incident.objects.get(monitor=monitor).started_at == T0


def test_a_task_id_stored_for_another_monitor_is_not_taken_for_this_ones(alice):
    monitor, other = new_monitor(alice), new_monitor(alice)
    probe_result_record(monitor_id=other.pk, record=record(at=T0, task_id="shared"))

    [result] = probe_results_record(records=[(monitor.pk, record(at=T0 + MINUTE, task_id="shared"))])

    assert result.monitor_id == monitor.pk
    assert ProbeResult.objects.filter(task_id="shared").count() == 2


def test_a_deleted_monitors_result_is_dropped_and_a_paused_ones_is_stored_without_moving_it(alice):
    kept, paused, deleted = new_monitor(alice), new_monitor(alice), new_monitor(alice, name="gone")
    services.monitor_pause(monitor=paused)
    deleted_id = deleted.pk
    services.monitor_delete(monitor=deleted)

    results = probe_results_record(records=[(deleted_id, record(at=T0, task_id="d")),
                                            (paused.pk, record(at=T0, success=False, task_id="p")),
                                            (kept.pk, record(at=T0, task_id="k"))])

    assert results[0] is None and [result.task_id for result in results[1:]] == ["p", "k"]
    assert sorted(ProbeResult.objects.values_list("task_id", flat=True)) == ["k", "p"]
    paused.refresh_from_db()
    assert (paused.status, paused.enabled, paused.last_checked_at) == (MonitorStatus.PAUSED, False, T0)
    assert not Incident.objects.exists()


def test_down_and_up_again_within_one_batch_opens_and_closes_the_incident_and_tells_the_channel(alice):
    hook = webhook_channel(alice, "http://127.0.0.1:9/hook")
    monitor = new_monitor(alice, failure_threshold=1, channels=[hook.pk])
    calm = new_monitor(alice)

    # Newest first, and beside a monitor whose state does not change: applied in the order they were checked.
    probe_results_record(records=[(monitor.pk, record(at=T0 + 2 * MINUTE, task_id="up")),
                                  (calm.pk, record(at=T0, task_id="calm")),
                                  (monitor.pk, record(at=T0 + MINUTE, success=False, task_id="down"))])

    incident = Incident.objects.get(monitor=monitor)
    assert (incident.started_at, incident.detected_at, incident.ended_at, incident.cause) == (
        T0 + MINUTE, T0 + MINUTE, T0 + 2 * MINUTE, "HTTP 503")
    assert sorted(Notification.objects.filter(incident=incident).values_list("event", "channel_id")) == sorted(
        [(AlertEvent.MONITOR_DOWN, hook.pk), (AlertEvent.MONITOR_UP, hook.pk)])
    states = {row.pk: (row.status, row.health, row.last_checked_at, row.consecutive_successes)
              for row in Monitor.objects.all()}
    assert states == {monitor.pk: ("up", "up", T0 + 2 * MINUTE, 1), calm.pk: ("up", "up", T0, 1)}


def test_a_monitor_already_down_stays_down_without_a_second_incident(alice):
    monitor = new_monitor(alice, failure_threshold=1)
    probe_result_record(monitor_id=monitor.pk, record=record(at=T0, success=False))

    probe_results_record(records=[(monitor.pk, record(at=T0 + MINUTE, success=False))])

    monitor.refresh_from_db()
    assert (monitor.status, monitor.consecutive_failures, monitor.last_checked_at) == ("down", 2, T0 + MINUTE)
    assert Incident.objects.filter(monitor=monitor).count() == 1


def test_the_mass_failure_guard_counts_the_batchs_own_failures_before_an_incident_opens(alice, settings):
    settings.LOOKOUT_GUARD_MIN_FAILING = 3
    settings.LOOKOUT_GUARD_FAILING_PERCENT = 50
    settings.LOOKOUT_GUARD_WINDOW_SECONDS = 300
    now = datetime.now(UTC).replace(microsecond=0)
    fleet = [new_monitor(alice, name=f"m{n}", failure_threshold=1) for n in range(4)]

    # All of them fail in one batch: the rows say so before the first incident asks the guard.
    probe_results_record(records=[(monitor.pk, record(at=now, success=False)) for monitor in fleet])

    assert Incident.objects.count() == 4
    assert DegradedEpisode.objects.filter(region="", ended_at__isnull=True).exists()


def test_an_older_result_in_a_batch_is_stored_but_leaves_the_monitor_at_its_newest(alice):
    monitor = new_monitor(alice, failure_threshold=1)
    probe_result_record(monitor_id=monitor.pk, record=record(at=T0, elapsed_ms=10))

    probe_results_record(records=[(monitor.pk, record(at=T0 - MINUTE, success=False, elapsed_ms=99))])

    monitor.refresh_from_db()
    assert (monitor.status, monitor.last_checked_at, monitor.last_response_time_ms) == ("up", T0, 10)
    assert ProbeResult.objects.filter(monitor=monitor).count() == 2
    assert not Incident.objects.exists()


def test_a_database_error_in_the_batch_is_djangos_and_stores_nothing(alice):
    monitor = new_monitor(alice)
    # A status code the column's check refuses: PostgreSQL fails the COPY.
    bad = dataclasses.replace(record(at=T0, task_id="bad"), status_code=-1)

    # Django's exception, as from the ORM: the batchers and the tasks' retries recognise database errors by these.
    with pytest.raises(IntegrityError):
        probe_results_record(records=[(monitor.pk, record(at=T0, task_id="good")), (monitor.pk, bad)])

    assert not ProbeResult.objects.exists()
    assert Monitor.objects.get(pk=monitor.pk).last_checked_at is None
