"""Monitor services called directly: a monitor and its PeriodicTask change together; results move state."""

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from django.db import DataError, IntegrityError, transaction
from django_celery_beat.models import PeriodicTask, PeriodicTasks

from lookout.monitors import rules, services
from lookout.monitors.models import Monitor, MonitorStatus
from lookout.monitors.spec import monitor_spec
from lookout.probes import results
from support.results import new_monitor, record

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


# --- one transaction for a monitor and its schedule -----------------------------------------------------------


def test_a_rolled_back_create_leaves_no_periodic_task(alice):
    with pytest.raises(RuntimeError), transaction.atomic():
        new_monitor(alice)
        assert PeriodicTask.objects.count() == 1
        raise RuntimeError("the caller's transaction fails after the monitor was created")

    assert Monitor.objects.count() == 0
    assert PeriodicTask.objects.count() == 0


def test_a_monitor_row_that_fails_to_insert_takes_its_new_periodic_task_with_it(alice, monkeypatch):
    # The task is inserted first; then the database refuses the monitor's row.
    def failing_save(*args, **kwargs):
        raise IntegrityError("the row was refused")

    monkeypatch.setattr(Monitor, "save", failing_save)
    with pytest.raises(IntegrityError):
        new_monitor(alice)
    monkeypatch.undo()

    assert Monitor.objects.count() == 0
    assert PeriodicTask.objects.count() == 0


def test_an_update_that_fails_after_the_schedule_changed_leaves_the_old_schedule(alice, monkeypatch):
    monitor = new_monitor(alice, interval=60)

    # The schedule is saved first; the monitor's own save then fails (as on a lost connection).
    def failing_save(*args, **kwargs):
        raise DataError("the row could not be written")

    monkeypatch.setattr(Monitor, "save", failing_save)
    with pytest.raises(DataError):
        services.monitor_update(monitor=monitor, spec=replace(monitor_spec(monitor), interval=30))
    monkeypatch.undo()

    monitor.refresh_from_db()
    task = PeriodicTask.objects.get(pk=monitor.periodic_task_id)
    assert monitor.interval == 60
    assert (task.interval.every, task.expire_seconds) == (60, 60)


def test_schedule_changes_bump_beats_change_marker(alice):
    monitor = new_monitor(alice)
    PeriodicTasks.objects.update(last_update=T0)

    services.monitor_update(monitor=monitor, spec=replace(monitor_spec(monitor), interval=30))

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
    assert new_monitor(alice).timeout == rules.DEFAULT_TIMEOUT
    assert new_monitor(alice, timeout=2.5).timeout == 2.5
    assert new_monitor(alice, interval=None, cron="0 * * * *").timeout == rules.DEFAULT_TIMEOUT


def test_an_update_does_not_overwrite_a_state_recorded_meanwhile(alice):
    monitor = new_monitor(alice)  # this in-memory copy still says pending
    results.probe_result_record(monitor_id=monitor.pk, record=record(at=T0))

    updated = services.monitor_update(monitor=monitor, spec=replace(monitor_spec(monitor), name="renamed"))

    assert (updated.name, updated.status) == ("renamed", "up")
    monitor.refresh_from_db()
    assert (monitor.name, monitor.status, monitor.last_checked_at) == ("renamed", "up", T0)
