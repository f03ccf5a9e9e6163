"""probe_result_record: one probe's result stored, and the monitor's state moved by it, in one transaction."""

from datetime import UTC, datetime, timedelta

import pytest

from lookout.monitors import services
from lookout.monitors.models import MonitorStatus, ProbeResult
from lookout.probes.results import probe_result_record
from support.results import new_monitor, record

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_a_success_is_recorded_and_the_monitor_is_up(alice):
    monitor = new_monitor(alice)

    result = probe_result_record(monitor_id=monitor.pk, record=record(at=T0, elapsed_ms=87.5,
                                                                                task_id="abc"))

    assert result is not None
    stored = ProbeResult.objects.get(pk=result.pk)
    assert (stored.monitor_id, stored.checked_at, stored.success, stored.status_code, stored.response_time_ms,
            stored.task_id) == (monitor.pk, T0, True, 200, 87.5, "abc")
    monitor.refresh_from_db()
    assert (monitor.status, monitor.last_checked_at, monitor.last_response_time_ms) == ("up", T0, 87.5)


def test_a_failure_is_recorded_and_the_monitor_is_down(alice):
    monitor = new_monitor(alice, failure_threshold=1)  # one failure confirms it (the default asks for two)

    result = probe_result_record(monitor_id=monitor.pk, record=record(at=T0, success=False))

    assert (result.success, result.status_code, result.error) == (False, 503, "HTTP 503")
    monitor.refresh_from_db()
    assert (monitor.status, monitor.last_checked_at) == ("down", T0)


def test_an_older_result_arriving_late_is_stored_but_does_not_roll_state_back(alice):
    monitor = new_monitor(alice)
    probe_result_record(monitor_id=monitor.pk, record=record(at=T0, success=True, elapsed_ms=10))

    late = probe_result_record(monitor_id=monitor.pk,
                               record=record(at=T0 - timedelta(seconds=30), success=False, elapsed_ms=99))

    assert late is not None and ProbeResult.objects.filter(monitor=monitor).count() == 2
    monitor.refresh_from_db()
    assert (monitor.status, monitor.last_checked_at, monitor.last_response_time_ms) == ("up", T0, 10)


def test_a_result_for_a_paused_monitor_leaves_it_paused(alice):
    monitor = new_monitor(alice)
    services.monitor_pause(monitor=monitor)

    result = probe_result_record(monitor_id=monitor.pk, record=record(at=T0, success=False))

    assert result is not None
    monitor.refresh_from_db()
    assert monitor.status == MonitorStatus.PAUSED
    assert monitor.last_checked_at == T0


def test_a_result_for_a_deleted_monitor_is_dropped(alice):
    monitor = new_monitor(alice)
    monitor_id = monitor.pk
    services.monitor_delete(monitor=monitor)

    assert probe_result_record(monitor_id=monitor_id, record=record(at=T0)) is None
    assert ProbeResult.objects.count() == 0
