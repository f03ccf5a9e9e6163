"""A monitor's django-celery-beat PeriodicTask, derived from the monitor.

Every function here runs inside the caller's transaction (the monitor services), so a monitor and its
schedule change together or not at all. Saves name their fields: beat owns last_run_at/total_run_count.
"""

import json
import uuid
from datetime import datetime
from typing import Any, TypeVar

from django.conf import settings
from django.db import connection, models, transaction
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from lookout.core.crontab import crontab_fields
from lookout.scheduling.regional import REGIONS_KWARG

PROBE_TASK = "lookout.probes.tasks.probe_monitor"
_SCHEDULE_FIELDS = ["interval", "crontab", "expire_seconds"]
# The advisory lock class under which a new shared schedule row is created ("LKSC"; the key is the table's hash).
_SCHEDULE_LOCK_CLASS = 0x4C4B5343

_Schedule = TypeVar("_Schedule", bound=models.Model)


def shared_schedule(model: type[_Schedule], **fields: Any) -> _Schedule:
    """The IntervalSchedule or CrontabSchedule row with these fields, created if there is none.

    Not get_or_create: django-celery-beat has no unique constraint on these fields, so two transactions saving the
    first monitor of a new interval at once each created a row, and from then on get() raised
    MultipleObjectsReturned: every monitor created or changed to that interval answered 500 (found by
    bench/soak.py, 8 creates at once). The first row by id serves where there are several already; a new row is
    created under a transaction-scoped advisory lock, so a concurrent creator waits for the commit and finds it.
    """
    found = model._default_manager.filter(**fields).order_by("pk").first()
    if found is not None:
        return found
    with transaction.atomic():  # the caller's transaction (a savepoint) or one of its own: the lock lasts to its end
        if connection.vendor == "postgresql":  # lookout dev's SQLite serializes writers by itself
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))",
                               [_SCHEDULE_LOCK_CLASS, model._meta.db_table])
            found = model._default_manager.filter(**fields).order_by("pk").first()
            if found is not None:
                return found
        return model._default_manager.create(**fields)


def periodic_task_name(monitor_id: int) -> str:
    return f"monitor:{monitor_id}"


def _schedule_values(*, interval: int | None, cron: str | None, tz: str) -> dict[str, Any]:
    if interval is not None:
        every = shared_schedule(IntervalSchedule, every=interval, period=IntervalSchedule.SECONDS)
        # A probe older than one interval is useless: it expires instead of piling up after an outage.
        return {"interval": every, "crontab": None, "expire_seconds": interval}
    assert cron is not None
    schedule = shared_schedule(CrontabSchedule, **crontab_fields(cron), timezone=tz)
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


def regional_payload(*, monitor_id: int, regions: list[str], spec: dict[str, Any],
                     sealed: dict[str, str]) -> dict[str, Any]:
    """What a monitor probed from other regions keeps in its PeriodicTask for beat (lookout.scheduling.regional)."""
    return {"monitor": monitor_id, "regions": regions, "spec": spec, "sealed": sealed}


def schedule_regional(task: PeriodicTask) -> dict[str, Any] | None:
    """The regional payload the task carries now (None: the home region alone)."""
    value: dict[str, Any] | None = json.loads(task.kwargs or "{}").get(REGIONS_KWARG)
    return value


def schedule_regional_set(task: PeriodicTask, payload: dict[str, Any] | None) -> None:
    if payload == schedule_regional(task):
        return
    task.kwargs = json.dumps({REGIONS_KWARG: payload} if payload else {})
    task.save(update_fields=["kwargs"])


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
