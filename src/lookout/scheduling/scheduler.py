"""Lookout's beat scheduler: django-celery-beat's DatabaseScheduler, reading the same PeriodicTask rows.

It adds what probes need on top of the stock scheduler:
- every crontab probe message expires before its next run is due (interval probes carry their interval as
  `expire_seconds` on the row);
- only the beat holding the single-beat lock (lookout.scheduling.lock) dispatches; any other beat waits;
- metrics, and the due time stamped on every message for the workers' schedule lag
  (lookout.observability.scheduler_metrics).
"""

import logging
from datetime import UTC, datetime
from typing import Any

from celery.schedules import crontab
from django.conf import settings
from django.db import DatabaseError
from django_celery_beat.schedulers import DatabaseScheduler, ModelEntry

from lookout.observability.scheduler_metrics import SchedulerMetrics
from lookout.scheduling.lock import NoLock, SchedulerLock, current_lock_set, scheduler_lock_for

logger = logging.getLogger(__name__)


def seconds_until_next_run(schedule: crontab, now: datetime) -> float:
    return max(1.0, schedule.remaining_estimate(now).total_seconds())


class LookoutScheduler(SchedulerMetrics, DatabaseScheduler):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Before super(): DatabaseScheduler.__init__ reads the schedule, and tick() may follow at once.
        self.lock: SchedulerLock | NoLock = scheduler_lock_for(settings.DATABASES["default"])
        self._dispatching = False
        self._setup_pending = False
        current_lock_set(self.lock)
        super().__init__(*args, **kwargs)

    def setup_schedule(self) -> None:
        # Started while the database is down: wait for it on standby (its /readyz says so) rather than exit and
        # crash-loop; the schedule is set up once this beat takes the lock, so once the database is back.
        try:
            super().setup_schedule()
            self._setup_pending = False
        except DatabaseError as exc:
            logger.warning("database unavailable at start (%s): waiting for it", exc)
            self._setup_pending = True

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
        if self._setup_pending:
            self.setup_schedule()

    def _stop_dispatching(self) -> None:
        # Another beat may hold the lock by now: writing our last_run_at values could overwrite its newer ones.
        self._dirty.clear()
        self._dispatching = False

    def apply_async(self, entry: ModelEntry, producer: Any = None, advance: bool = True, **kwargs: Any) -> Any:
        # tick() sends the entry it had before reserve() moved it on (advance=False): the expiry goes on the
        # entry actually sent, computed at send time, so even the first send after a reload expires.
        if advance:
            entry = self.reserve(entry)
        if isinstance(entry.schedule, crontab) and entry.model.expire_seconds is None:
            entry.options = {**entry.options,
                             "expires": seconds_until_next_run(entry.schedule, datetime.now(UTC))}
        return super().apply_async(entry, producer=producer, advance=False, **kwargs)

    def sync(self) -> None:
        # A standby has sent nothing; only the lock holder persists last_run_at.
        if self._dispatching or not self.lock.requires_lock:
            super().sync()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.lock.release()
