"""Beat's metrics and the due time it stamps on each message (SchedulerMetrics), on Celery's own Scheduler."""

from datetime import UTC, datetime, timedelta

import pytest
from celery.beat import ScheduleEntry, Scheduler
from celery.schedules import crontab, schedule
from prometheus_client import REGISTRY

from lookout.config.celery_app import app
from lookout.observability.metrics import DUE_AT_HEADER, beat_metrics, schedule_lag_observe, worker_metrics
from lookout.observability.scheduler_metrics import SchedulerMetrics, entry_due_at

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class InMemoryScheduler(Scheduler):
    def all_as_schedule(self) -> dict:  # the database scheduler's hook; here, two entries
        return {"a": object(), "b": object()}


class RecordingScheduler(SchedulerMetrics, InMemoryScheduler):
    """Celery's in-memory scheduler, with SchedulerMetrics; sends nothing, records what it would send."""

    def __init__(self, *, fail: bool = False) -> None:
        super().__init__(app=app, lazy=True)
        self.sent: list[dict] = []
        self.fail = fail

    def send_task(self, name, args=None, kwargs=None, **options):
        if self.fail:
            raise ConnectionError("broker down")
        self.sent.append(options)
        return None


def entry(run_every: schedule | crontab, *, last_run_at: datetime, start_time: datetime | None = None,
          task: str = "lookout.tests.not_registered") -> ScheduleEntry:
    made = ScheduleEntry(name="monitor:1", task=task, schedule=run_every, last_run_at=last_run_at, app=app,
                         options={"headers": {"periodic_task_name": "monitor:1"}})
    made.model = type("Row", (), {"start_time": start_time})()
    return made


def dispatches(task: str, outcome: str) -> float:
    return REGISTRY.get_sample_value("lookout_beat_dispatches_total", {"task": task, "outcome": outcome}) or 0.0


def test_an_interval_run_is_due_one_interval_after_the_last():
    due = entry_due_at(entry(schedule(timedelta(seconds=60), app=app), last_run_at=T0))

    assert due == (T0 + timedelta(seconds=60)).timestamp()


def test_a_crontab_run_is_due_at_the_fire_time_after_the_last():
    due = entry_due_at(entry(crontab(minute="*/5", app=app), last_run_at=T0 + timedelta(minutes=1)))

    assert due == pytest.approx((T0 + timedelta(minutes=5)).timestamp(), abs=0.01)


def test_a_new_or_resumed_monitor_is_due_when_it_was_saved_not_decades_ago():
    # django-celery-beat backdates last_run_at by 30 years when start_time is set, to run at once.
    saved = datetime.now(UTC) - timedelta(seconds=2)
    due = entry_due_at(entry(schedule(timedelta(seconds=60), app=app), last_run_at=saved - timedelta(days=365 * 30),
                             start_time=saved))

    assert due == saved.timestamp()


def test_sending_stamps_the_due_time_and_counts_the_dispatch():
    scheduler = RecordingScheduler()
    task = "lookout.tests.stamped"
    before = dispatches(task, "sent")

    scheduler.apply_async(entry(schedule(timedelta(seconds=60), app=app), last_run_at=T0, task=task), advance=False)

    assert scheduler.sent[0]["headers"] == {"periodic_task_name": "monitor:1", "celery_beat_task": True,
                                            DUE_AT_HEADER: (T0 + timedelta(seconds=60)).timestamp()}
    assert dispatches(task, "sent") == before + 1


def test_a_failed_send_is_counted_and_still_raised():
    scheduler = RecordingScheduler(fail=True)
    task = "lookout.tests.failing"
    before = dispatches(task, "failed")

    with pytest.raises(Exception, match="broker down"):
        scheduler.apply_async(entry(schedule(timedelta(seconds=60), app=app), last_run_at=T0, task=task),
                              advance=False)
    assert dispatches(task, "failed") == before + 1


def test_ticks_and_reloads_are_measured():
    metrics = beat_metrics()
    scheduler = RecordingScheduler()
    ticks_before = REGISTRY.get_sample_value("lookout_beat_tick_duration_seconds_count")
    reloads_before = REGISTRY.get_sample_value("lookout_beat_schedule_reloads_total")

    scheduler.tick()
    scheduler.all_as_schedule()

    assert REGISTRY.get_sample_value("lookout_beat_tick_duration_seconds_count") == ticks_before + 1
    last_tick = REGISTRY.get_sample_value("lookout_beat_last_tick_timestamp_seconds")
    assert last_tick == pytest.approx(datetime.now(UTC).timestamp(), abs=5)
    assert REGISTRY.get_sample_value("lookout_beat_schedule_reloads_total") == reloads_before + 1
    assert REGISTRY.get_sample_value("lookout_beat_schedules") == 2
    assert metrics is beat_metrics()  # created once per process


def test_the_worker_observes_lag_from_the_due_time_and_ignores_check_now():
    worker_metrics()
    count = "lookout_schedule_lag_seconds_count"
    before = REGISTRY.get_sample_value(count)

    schedule_lag_observe(1000.0, started_at=1000.25)
    schedule_lag_observe(None)  # check-now: no due time
    schedule_lag_observe("garbage")
    schedule_lag_observe(1000.0, started_at=999.0)  # a worker clock behind beat's: 0, never negative

    assert REGISTRY.get_sample_value(count) == before + 2
    assert REGISTRY.get_sample_value("lookout_schedule_lag_seconds_bucket", {"le": "0.01"}) >= 1
