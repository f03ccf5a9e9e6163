"""Monitor services called directly: a monitor and its PeriodicTask change together; results move state."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import DataError, IntegrityError, transaction
from django_celery_beat.models import PeriodicTask, PeriodicTasks

from lookout.monitors import services
from lookout.monitors.models import Monitor, MonitorStatus, ProbeResult
from lookout.monitors.services import ProbeRecord

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def new_monitor(owner, **fields) -> Monitor:
    return services.monitor_create(owner=owner, **{"name": "Example", "url": "https://example.com/",
                                                   "interval": 60, **fields})


def record(*, at: datetime, success: bool = True, elapsed_ms: float = 42.0, task_id: str = "t") -> ProbeRecord:
    return ProbeRecord(checked_at=at, success=success, status_code=200 if success else 503,
                       response_time_ms=elapsed_ms, error="" if success else "HTTP 503", task_id=task_id)


# --- one transaction for a monitor and its schedule -----------------------------------------------------------


def test_a_rolled_back_create_leaves_no_periodic_task(alice):
    with pytest.raises(RuntimeError), transaction.atomic():
        new_monitor(alice)
        assert PeriodicTask.objects.count() == 1
        raise RuntimeError("the caller's transaction fails after the monitor was created")

    assert Monitor.objects.count() == 0
    assert PeriodicTask.objects.count() == 0


def test_a_monitor_row_that_fails_to_insert_takes_its_new_periodic_task_with_it(alice):
    # Both interval and cron: the database's check constraint refuses the monitor, after the task was inserted.
    with pytest.raises(IntegrityError):
        new_monitor(alice, cron="* * * * *")

    assert Monitor.objects.count() == 0
    assert PeriodicTask.objects.count() == 0


def test_an_update_that_fails_after_the_schedule_changed_leaves_the_old_schedule(alice):
    monitor = new_monitor(alice, interval=60)

    # The schedule is saved first; the monitor's own save then fails on the name's column size.
    with pytest.raises(DataError):
        services.monitor_update(monitor=monitor, changes={"interval": 30, "name": "n" * 201})

    monitor.refresh_from_db()
    task = PeriodicTask.objects.get(pk=monitor.periodic_task_id)
    assert monitor.interval == 60
    assert (task.interval.every, task.expire_seconds) == (60, 60)


def test_schedule_changes_bump_beats_change_marker(alice):
    monitor = new_monitor(alice)
    PeriodicTasks.objects.update(last_update=T0)

    services.monitor_update(monitor=monitor, changes={"interval": 30})

    # Beat reloads its schedule when this moves: the change takes effect without restarting beat.
    assert PeriodicTasks.last_change() > T0


def test_pause_resume_and_delete_keep_the_periodic_task_in_step(alice):
    monitor = new_monitor(alice)
    task_pk = monitor.periodic_task_id
    PeriodicTask.objects.filter(pk=task_pk).update(last_run_at=T0)

    paused = services.monitor_pause(monitor=monitor)
    assert (paused.enabled, paused.status) == (False, MonitorStatus.PAUSED)
    assert PeriodicTask.objects.get(pk=task_pk).enabled is False

    resumed = services.monitor_resume(monitor=monitor)
    assert (resumed.enabled, resumed.status) == (True, MonitorStatus.PENDING)
    task = PeriodicTask.objects.get(pk=task_pk)
    assert task.enabled is True
    # A resumed monitor is probed at once, not one interval after it was paused.
    assert task.last_run_at is None and task.start_time is not None

    services.monitor_delete(monitor=monitor)
    assert not Monitor.objects.filter(pk=monitor.pk).exists()
    assert not PeriodicTask.objects.filter(pk=task_pk).exists()


def test_pausing_twice_is_harmless(alice):
    monitor = new_monitor(alice)
    services.monitor_pause(monitor=monitor)

    again = services.monitor_pause(monitor=monitor)

    assert (again.enabled, again.status) == (False, MonitorStatus.PAUSED)
    assert PeriodicTask.objects.get(pk=monitor.periodic_task_id).enabled is False


def test_a_create_without_a_timeout_gets_the_default_and_an_explicit_one_is_kept(alice):
    assert new_monitor(alice).timeout == services.DEFAULT_TIMEOUT
    assert new_monitor(alice, timeout=2.5).timeout == 2.5
    assert new_monitor(alice, interval=None, cron="0 * * * *").timeout == services.DEFAULT_TIMEOUT


# --- probe_result_record ------------------------------------------------------------------------------------


def test_a_success_is_recorded_and_the_monitor_is_up(alice):
    monitor = new_monitor(alice)

    result = services.probe_result_record(monitor_id=monitor.pk, record=record(at=T0, elapsed_ms=87.5,
                                                                                task_id="abc"))

    assert result is not None
    stored = ProbeResult.objects.get(pk=result.pk)
    assert (stored.monitor_id, stored.checked_at, stored.success, stored.status_code, stored.response_time_ms,
            stored.task_id) == (monitor.pk, T0, True, 200, 87.5, "abc")
    monitor.refresh_from_db()
    assert (monitor.status, monitor.last_checked_at, monitor.last_response_time_ms) == ("up", T0, 87.5)


def test_a_failure_is_recorded_and_the_monitor_is_down(alice):
    monitor = new_monitor(alice, failure_threshold=1)  # one failure confirms it (the default asks for two)

    result = services.probe_result_record(monitor_id=monitor.pk, record=record(at=T0, success=False))

    assert (result.success, result.status_code, result.error) == (False, 503, "HTTP 503")
    monitor.refresh_from_db()
    assert (monitor.status, monitor.last_checked_at) == ("down", T0)


def test_an_older_result_arriving_late_is_stored_but_does_not_roll_state_back(alice):
    monitor = new_monitor(alice)
    services.probe_result_record(monitor_id=monitor.pk, record=record(at=T0, success=True, elapsed_ms=10))

    late = services.probe_result_record(monitor_id=monitor.pk,
                                        record=record(at=T0 - timedelta(seconds=30), success=False, elapsed_ms=99))

    assert late is not None and ProbeResult.objects.filter(monitor=monitor).count() == 2
    monitor.refresh_from_db()
    assert (monitor.status, monitor.last_checked_at, monitor.last_response_time_ms) == ("up", T0, 10)


def test_a_result_for_a_paused_monitor_leaves_it_paused(alice):
    monitor = new_monitor(alice)
    services.monitor_pause(monitor=monitor)

    result = services.probe_result_record(monitor_id=monitor.pk, record=record(at=T0, success=False))

    assert result is not None
    monitor.refresh_from_db()
    assert monitor.status == MonitorStatus.PAUSED
    assert monitor.last_checked_at == T0


def test_a_result_for_a_deleted_monitor_is_dropped(alice):
    monitor = new_monitor(alice)
    monitor_id = monitor.pk
    services.monitor_delete(monitor=monitor)

    assert services.probe_result_record(monitor_id=monitor_id, record=record(at=T0)) is None
    assert ProbeResult.objects.count() == 0


def test_an_update_does_not_overwrite_a_state_recorded_meanwhile(alice):
    monitor = new_monitor(alice)  # this in-memory copy still says pending
    services.probe_result_record(monitor_id=monitor.pk, record=record(at=T0))

    updated = services.monitor_update(monitor=monitor, changes={"name": "renamed"})

    assert (updated.name, updated.status) == ("renamed", "up")
    monitor.refresh_from_db()
    assert (monitor.name, monitor.status, monitor.last_checked_at) == ("renamed", "up", T0)
