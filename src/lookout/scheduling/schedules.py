"""A monitor's django-celery-beat PeriodicTask, derived from the monitor.

Every function here runs inside the caller's transaction (the monitor services), so a monitor and its
schedule change together or not at all. Saves name their fields: beat owns last_run_at/total_run_count.
"""

import json
import uuid
from datetime import datetime
from typing import Any

from django.conf import settings
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from lookout.core.crontab import crontab_fields

PROBE_TASK = "lookout.probes.tasks.probe_monitor"
_SCHEDULE_FIELDS = ["interval", "crontab", "expire_seconds"]


def periodic_task_name(monitor_id: int) -> str:
    return f"monitor:{monitor_id}"


def _schedule_values(*, interval: int | None, cron: str | None, tz: str) -> dict[str, Any]:
    if interval is not None:
        every, _ = IntervalSchedule.objects.get_or_create(every=interval, period=IntervalSchedule.SECONDS)
        # A probe older than one interval is useless: it expires instead of piling up after an outage.
        return {"interval": every, "crontab": None, "expire_seconds": interval}
    assert cron is not None
    schedule, _ = CrontabSchedule.objects.get_or_create(**crontab_fields(cron), timezone=tz)
    # Crontab gaps vary; the scheduler sets each message's expiry to the time until the next run.
    return {"interval": None, "crontab": schedule, "expire_seconds": None}


def schedule_create(*, interval: int | None, cron: str | None, tz: str) -> PeriodicTask:
    """A schedule for a monitor about to be created; schedule_attach names it once the monitor has an id."""
    return PeriodicTask.objects.create(
        name=f"monitor:new:{uuid.uuid4()}",
        task=PROBE_TASK,
        queue=settings.LOOKOUT_PROBE_QUEUE,
        enabled=True,
        # start_time makes beat run the first probe at once rather than one interval after creation.
        start_time=timezone.now(),
        description="Derived from its monitor: change the monitor, not this task.",
        **_schedule_values(interval=interval, cron=cron, tz=tz),
    )


def schedule_attach(task: PeriodicTask, *, monitor_id: int) -> None:
    task.name = periodic_task_name(monitor_id)
    task.args = json.dumps([monitor_id])
    task.save(update_fields=["name", "args"])


def schedule_change(task: PeriodicTask, *, interval: int | None, cron: str | None, tz: str) -> None:
    for field, value in _schedule_values(interval=interval, cron=cron, tz=tz).items():
        setattr(task, field, value)
    task.save(update_fields=_SCHEDULE_FIELDS)


def schedule_enable(task: PeriodicTask, *, enabled: bool, now: datetime | None = None) -> None:
    task.enabled = enabled
    if enabled:
        # Resuming probes at once, like a new monitor, instead of after a full interval.
        task.start_time = now or timezone.now()
        task.last_run_at = None
    task.save(update_fields=["enabled", "start_time", "last_run_at"])


def schedule_delete(task: PeriodicTask) -> None:
    task.delete()
