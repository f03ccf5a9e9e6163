"""Beat's side of the metrics: ticks, dispatches, schedule reloads, and the due time stamped on every message.

A mixin for a Celery beat scheduler (LookoutScheduler puts it right before DatabaseScheduler), hooking only
Celery's scheduler interface: tick(), apply_async() and the database scheduler's all_as_schedule().
"""

import logging
import time
from typing import Any

from celery.schedules import schedule as celery_schedule

from lookout.observability.metrics import BEAT_DISPATCHES, DUE_AT_HEADER, beat_metrics

logger = logging.getLogger(__name__)


def entry_due_at(entry: Any) -> float | None:
    """The Unix time this run of the entry was due: its last run plus the schedule (crontab: next fire time).

    A new or resumed monitor's row has a `start_time` and a last run decades ago (django-celery-beat's way to
    make it run at once): its first run is due at `start_time`, not decades ago.
    """
    try:
        schedule = entry.schedule
        last_run_at = schedule.maybe_make_aware(entry.last_run_at)
        if isinstance(schedule, celery_schedule):  # an interval: exactly one period after the last run
            due = last_run_at + schedule.run_every
        else:  # crontab, solar: the next fire time after the last run, as the schedule itself reckons it
            due = schedule.maybe_make_aware(schedule.now()) + schedule.remaining_estimate(last_run_at)
    except Exception:  # a schedule that cannot say when it was due sends its message without a due time
        logger.debug("no due time for %r", getattr(entry, "name", entry), exc_info=True)
        return None
    start_time = getattr(getattr(entry, "model", None), "start_time", None)
    if start_time is not None and due < start_time:
        due = start_time
    return due.timestamp()


class SchedulerMetrics:
    def tick(self, *args: Any, **kwargs: Any) -> float:
        started = time.perf_counter()
        try:
            return super().tick(*args, **kwargs)  # type: ignore[misc]
        finally:
            metrics = beat_metrics()
            metrics.tick_duration.observe(time.perf_counter() - started)
            metrics.last_tick.set(time.time())

    def all_as_schedule(self) -> dict:
        schedule = super().all_as_schedule()  # type: ignore[misc]
        metrics = beat_metrics()
        metrics.reloads.inc()
        metrics.schedules.set(len(schedule))
        return schedule

    def apply_async(self, entry: Any, producer: Any = None, advance: bool = True, **kwargs: Any) -> Any:
        # tick() hands over the entry before reserve() moved it on, so its last run is the previous one.
        due_at = entry_due_at(entry)
        if due_at is not None:
            # A fresh dict: the entry's options may be shared with the entry that replaces it.
            headers = {**(entry.options.get("headers") or {}), DUE_AT_HEADER: due_at}
            entry.options = {**entry.options, "headers": headers}
        try:
            result = super().apply_async(entry, producer=producer, advance=advance, **kwargs)  # type: ignore[misc]
        except Exception:
            BEAT_DISPATCHES.labels(task=entry.task, outcome="failed").inc()
            raise
        BEAT_DISPATCHES.labels(task=entry.task, outcome="sent").inc()
        return result
