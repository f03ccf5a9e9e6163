"""Periodic tasks as data: Lookout's built-in maintenance schedules, and the services of the staff API over
django-celery-beat's PeriodicTask rows.

How settings and the API coexist: LOOKOUT_PERIODIC_TASKS (settings, tuned by environment variables) only
seeds rows. `lookout migrate` creates each one that does not exist and never touches an existing one, so a
schedule changed through the API (or the admin) survives restarts and upgrades. Nothing is put in
CELERY_BEAT_SCHEDULE, which beat would rewrite into the rows at every start. Built-in rows cannot be deleted
(they would come back at the next migrate): disable them instead.

Only allowlisted task names (those of LOOKOUT_PERIODIC_TASKS) may be scheduled through the API, and a
monitor's own task changes only through its monitor.
"""

from typing import Any, TypedDict

from django.conf import settings
from django.db import transaction
from django.db.models import F, QuerySet
from django.utils import timezone as django_timezone
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from lookout.core.crontab import crontab_fields
from lookout.core.errors import Conflict, Refused
from lookout.scheduling.schedules import PROBE_TASK, shared_schedule

PERIOD_SECONDS = {IntervalSchedule.SECONDS: 1, IntervalSchedule.MINUTES: 60, IntervalSchedule.HOURS: 3600,
                  IntervalSchedule.DAYS: 86400}


class Interval(TypedDict):
    every: int
    period: str


class PeriodicTaskRefused(Refused):
    """The change is not allowed; the message says why, for the API client."""


def allowed_tasks() -> dict[str, str]:
    """Task names the API may schedule, with what they do."""
    return {spec["task"]: spec["description"] for spec in settings.LOOKOUT_PERIODIC_TASKS.values()}


def builtin(task: PeriodicTask) -> bool:
    return task.name in settings.LOOKOUT_PERIODIC_TASKS


def monitor_owned(task: PeriodicTask) -> bool:
    if task.task == PROBE_TASK:
        return True
    if hasattr(task, "monitor_id"):  # annotated by periodic_task_list
        return task.monitor_id is not None
    return PeriodicTask.objects.filter(pk=task.pk, monitor__isnull=False).exists()


def periodic_tasks_seed() -> list[str]:
    """Create the built-in schedules that do not exist yet; returns their names. Existing rows stay as they are."""
    created = []
    for name, spec in settings.LOOKOUT_PERIODIC_TASKS.items():
        if PeriodicTask.objects.filter(name=name).exists():
            continue
        every = shared_schedule(IntervalSchedule, every=spec["every"], period=IntervalSchedule.SECONDS)
        # A maintenance run older than its period is superseded by the next one: it expires instead of piling up.
        PeriodicTask.objects.create(name=name, task=spec["task"], interval=every, expire_seconds=spec["every"],
                                    description=spec["description"], enabled=True)
        created.append(name)
    return created


def periodic_task_list() -> QuerySet[PeriodicTask]:
    # monitor_id: the monitor owning the task, through Monitor.periodic_task (a reverse one-to-one).
    # (Typed here: django-celery-beat's manager is an untyped QuerySet.as_manager().)
    tasks: QuerySet[PeriodicTask] = (PeriodicTask.objects.select_related("interval", "crontab")
                                     .annotate(monitor_id=F("monitor__id")).order_by("id"))
    return tasks


def _schedule_values(*, interval: Interval | None, crontab: str | None, tz: str) -> dict[str, Any]:
    if interval is not None and crontab is not None:
        raise PeriodicTaskRefused("Give an interval or a crontab, not both; send null for the other.")
    if interval is not None:
        every = shared_schedule(IntervalSchedule, every=interval["every"], period=interval["period"])
        return {"interval": every, "crontab": None,
                "expire_seconds": interval["every"] * PERIOD_SECONDS[interval["period"]]}
    if crontab is None:
        raise PeriodicTaskRefused("Give an interval ({every, period}) or a crontab.")
    schedule = shared_schedule(CrontabSchedule, **crontab_fields(crontab), timezone=tz)
    # Lookout's scheduler sets each crontab run's expiry to the time until the next one.
    return {"interval": None, "crontab": schedule, "expire_seconds": None}


@transaction.atomic
def periodic_task_create(*, name: str, task: str, interval: Interval | None = None, crontab: str | None = None,
                         timezone: str = "UTC", enabled: bool = True, description: str = "") -> PeriodicTask:
    if task not in allowed_tasks():
        raise PeriodicTaskRefused(f"{task!r} is not a task that can be scheduled here.")
    if PeriodicTask.objects.filter(name=name).exists():
        raise Conflict(f"A periodic task named {name!r} exists.")
    return PeriodicTask.objects.create(name=name, task=task, enabled=enabled, description=description,
                                       start_time=django_timezone.now() if enabled else None,
                                       **_schedule_values(interval=interval, crontab=crontab, tz=timezone))


@transaction.atomic
def periodic_task_update(*, task: PeriodicTask, changes: dict[str, Any]) -> PeriodicTask:
    """Change a task's schedule, description or enabled flag; never beat's last_run_at or run count."""
    locked: PeriodicTask = (PeriodicTask.objects.select_for_update(of=("self",)).select_related("interval", "crontab")
                            .get(pk=task.pk))
    _refuse_monitor_owned(task)
    fields: list[str] = []
    if {"interval", "crontab", "timezone"} & changes.keys():
        interval = changes["interval"] if "interval" in changes else task_interval(locked)
        crontab = changes["crontab"] if "crontab" in changes else task_crontab(locked)
        tz = changes.get("timezone") or (str(locked.crontab.timezone) if locked.crontab else "UTC")
        for name, value in _schedule_values(interval=interval, crontab=crontab, tz=tz).items():
            setattr(locked, name, value)
        fields += ["interval", "crontab", "expire_seconds"]
    if "description" in changes:
        locked.description = changes["description"]
        fields.append("description")
    if "enabled" in changes and changes["enabled"] != locked.enabled:
        locked.enabled = changes["enabled"]
        fields.append("enabled")
        if locked.enabled:  # runs at once, like a resumed monitor
            locked.start_time, locked.last_run_at = django_timezone.now(), None
            fields += ["start_time", "last_run_at"]
    if fields:
        # Named fields: a full save could overwrite the last_run_at/total_run_count beat just wrote.
        locked.save(update_fields=fields)
    return locked


@transaction.atomic
def periodic_task_delete(*, task: PeriodicTask) -> None:
    _refuse_monitor_owned(task)
    if builtin(task):
        raise PeriodicTaskRefused(f"{task.name!r} is built in and would be created again by `lookout migrate`: "
                                  "disable it instead.")
    task.delete()


def _refuse_monitor_owned(task: PeriodicTask) -> None:
    if monitor_owned(task):
        owner = getattr(task, "monitor_id", None)
        raise PeriodicTaskRefused(
            f"This task belongs to monitor {owner}: change, pause or delete the monitor instead."
            if owner else "This task belongs to a monitor: change the monitor instead.")


def task_interval(task: PeriodicTask) -> Interval | None:
    if task.interval is None:
        return None
    return {"every": task.interval.every, "period": task.interval.period}


def task_crontab(task: PeriodicTask) -> str | None:
    if task.crontab is None:
        return None
    c = task.crontab
    return f"{c.minute} {c.hour} {c.day_of_month} {c.month_of_year} {c.day_of_week}"
