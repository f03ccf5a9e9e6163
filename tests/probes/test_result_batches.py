"""probe_results_record: a worker's batch of results, for several monitors, recorded in one transaction."""

from datetime import UTC, datetime, timedelta

import pytest

from lookout.alerting.models import Incident
from lookout.monitors import services
from lookout.monitors.models import EventKind, Monitor, MonitorEvent, MonitorStatus, ProbeResult
from lookout.probes.results import probe_result_record, probe_results_record
from support.results import new_monitor, record

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
MINUTE = timedelta(seconds=60)


def test_a_batch_records_each_result_and_moves_each_monitors_own_state(alice):
    healthy = new_monitor(alice, name="healthy")
    broken = new_monitor(alice, name="broken", failure_threshold=1)
    paused = services.monitor_pause(monitor=new_monitor(alice, name="paused"))
    deleted = new_monitor(alice, name="deleted")
    deleted_id = deleted.pk
    services.monitor_delete(monitor=deleted)

    results = probe_results_record(records=[
        (healthy.pk, record(at=T0, task_id="a")), (deleted_id, record(at=T0, task_id="b")),
        (broken.pk, record(at=T0, success=False, task_id="c")), (paused.pk, record(at=T0, success=False, task_id="d")),
    ])

    # One result per record, in the order given; None for the deleted monitor.
    assert [(result.monitor_id, result.task_id) if result else None for result in results] == [
        (healthy.pk, "a"), None, (broken.pk, "c"), (paused.pk, "d")]
    assert sorted(ProbeResult.objects.values_list("task_id", flat=True)) == ["a", "c", "d"]
    states = {monitor.pk: (monitor.status, monitor.last_checked_at) for monitor in Monitor.objects.all()}
    assert states == {healthy.pk: (MonitorStatus.UP, T0), broken.pk: (MonitorStatus.DOWN, T0),
                      paused.pk: (MonitorStatus.PAUSED, T0)}
    assert list(Incident.objects.values_list("monitor_id", flat=True)) == [broken.pk]


def test_two_results_of_one_monitor_in_a_batch_apply_in_the_order_they_were_checked(alice):
    monitor = new_monitor(alice, failure_threshold=1)

    # Given newest first: the failure at T0 still confirms the outage, the success a minute later ends it.
    probe_results_record(records=[(monitor.pk, record(at=T0 + MINUTE, success=True)),
                                           (monitor.pk, record(at=T0, success=False))])

    monitor.refresh_from_db()
    assert (monitor.status, monitor.last_checked_at, monitor.consecutive_successes) == ("up", T0 + MINUTE, 1)
    incident = Incident.objects.get(monitor=monitor)
    assert (incident.started_at, incident.ended_at) == (T0, T0 + MINUTE)


def test_a_result_older_than_the_monitors_last_check_is_stored_but_moves_nothing_in_a_batch(alice):
    monitor = new_monitor(alice)
    other = new_monitor(alice)
    probe_result_record(monitor_id=monitor.pk, record=record(at=T0))

    probe_results_record(records=[(monitor.pk, record(at=T0 - MINUTE, success=False)),
                                           (other.pk, record(at=T0))])

    monitor.refresh_from_db()
    assert (monitor.status, monitor.last_checked_at, monitor.consecutive_failures) == ("up", T0, 0)
    assert ProbeResult.objects.filter(monitor=monitor).count() == 2
    assert Monitor.objects.get(pk=other.pk).status == MonitorStatus.UP


def test_each_expiring_certificate_in_a_batch_raises_its_own_event_once(alice):
    first, second = new_monitor(alice, tls_expiry_days=14), new_monitor(alice, tls_expiry_days=14)
    expiring = {"tls_not_after": T0 + timedelta(days=3), "tls": {"subject": "CN=a", "issuer": "CN=ca"}}

    probe_results_record(records=[
        (first.pk, record(at=T0, tls_fingerprint="one", **expiring)),
        (second.pk, record(at=T0, tls_fingerprint="two", **expiring)),
        (first.pk, record(at=T0 + MINUTE, tls_fingerprint="one", **expiring)),
    ])

    events = MonitorEvent.objects.filter(kind=EventKind.TLS_EXPIRING)
    assert sorted(events.values_list("monitor_id", "key")) == [(first.pk, "one"), (second.pk, "two")]
    assert Monitor.objects.get(pk=first.pk).tls_fingerprint == "one"


def test_a_probe_delivered_again_is_recorded_once_and_moves_the_state_once(alice):
    monitor = new_monitor(alice, failure_threshold=2)
    first = probe_result_record(monitor_id=monitor.pk, record=record(at=T0, success=False, task_id="run-1"))
    # Its worker died after the commit, before the acknowledgement: the broker delivers the probe again, and it
    # runs again (later), in a batch beside the same delivery twice and a probe of its own.
    again = probe_results_record(records=[
        (monitor.pk, record(at=T0 + MINUTE, success=False, task_id="run-1")),
        (monitor.pk, record(at=T0 + MINUTE, success=False, task_id="run-1")),
        (monitor.pk, record(at=T0 + 2 * MINUTE, success=True, task_id="run-2")),
    ])

    assert [result.pk for result in again[:2]] == [first.pk, first.pk]
    assert sorted(ProbeResult.objects.values_list("task_id", flat=True)) == ["run-1", "run-2"]
    monitor.refresh_from_db()
    # One failure (under the threshold of 2), then a success: never down, one failure counted, not two.
    assert monitor.status == MonitorStatus.UP and monitor.last_checked_at == T0 + 2 * MINUTE
    assert not Incident.objects.exists()


def test_results_without_a_task_id_are_all_recorded(alice):
    monitor = new_monitor(alice)
    probe_results_record(records=[(monitor.pk, record(at=T0, task_id="")),
                                  (monitor.pk, record(at=T0 + MINUTE, task_id=""))])
    assert ProbeResult.objects.filter(monitor=monitor).count() == 2
