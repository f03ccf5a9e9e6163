"""Lookout's beat scheduler: django-celery-beat's DatabaseScheduler, reading the same PeriodicTask rows.

It adds what probes need on top of the stock scheduler:
- every crontab probe message expires before its next run is due (interval probes carry their interval as
  `expire_seconds` on the row);
- only the beat holding the single-beat lock (lookout.scheduling.lock) dispatches; any other beat waits;
- metrics, and the due time stamped on every message for the workers' schedule lag
  (lookout.observability.scheduler_metrics).
"""

from datetime import UTC, datetime
from typing import Any

from celery.schedules import crontab
from django.conf import settings
from django_celery_beat.schedulers import DatabaseScheduler, ModelEntry

from lookout.observability.scheduler_metrics import SchedulerMetrics
from lookout.scheduling.lock import NoLock, SchedulerLock, current_lock_set, scheduler_lock_for


def seconds_until_next_run(schedule: crontab, now: datetime) -> float:
    return max(1.0, schedule.remaining_estimate(now).total_seconds())


class LookoutScheduler(SchedulerMetrics, DatabaseScheduler):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Before super(): DatabaseScheduler.__init__ reads the schedule, and tick() may follow at once.
        self.lock: SchedulerLock | NoLock = scheduler_lock_for(settings.DATABASES["default"])
        self._dispatching = False
        current_lock_set(self.lock)
        super().__init__(*args, **kwargs)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        if not self.lock.ensure_held():
            if self._dispatching:
                self._stop_dispatching()
            return min(self.lock.poll_seconds, self.max_interval)
        if not self._dispatching:
            self._start_dispatching()
        return super().tick(*args, **kwargs)

    def _start_dispatching(self) -> None:
        # The rows read when this beat started (or last held the lock) are stale: another beat has been
        # sending since. Read everything afresh and rebuild the heap before the first send.
        self._initial_read = True
        self._heap = None
        self._dispatching = True

    def _stop_dispatching(self) -> None:
        # Another beat may hold the lock by now: writing our last_run_at values could overwrite its newer ones.
        self._dirty.clear()
        self._dispatching = False

    def reserve(self, entry: ModelEntry) -> ModelEntry:
        # reserve() builds the entry that is sent, afresh from its row: set this run's expiry on it.
        new_entry = super().reserve(entry)
        if isinstance(new_entry.schedule, crontab) and "expires" not in new_entry.options:
            new_entry.options["expires"] = seconds_until_next_run(new_entry.schedule, datetime.now(UTC))
        return new_entry

    def sync(self) -> None:
        # A standby has sent nothing; only the lock holder persists last_run_at.
        if self._dispatching or not self.lock.requires_lock:
            super().sync()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.lock.release()
