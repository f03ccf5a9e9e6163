"""Maintenance windows: when they are active, the monitors' `maintenance` status, and alerts deferred by them.

During a window, probes still run and are recorded and incidents still open (the history stays true), but
their down alerts are held back. An incident still open when the window ends gets its down alert then; one
that recovered inside the window never alerts (nor its recovery).
"""

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from celery.schedules import crontab
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from lookout.alerting.incidents import incident_deferred_release
from lookout.alerting.models import Incident, MaintenanceWindow
from lookout.core.crontab import crontab_fields
from lookout.monitors.models import Monitor, MonitorStatus

MAX_DURATION_SECONDS = 7 * 24 * 3600
_MINUTE = timedelta(minutes=1)


def cron_window_active(*, cron: str, tz: str, duration_seconds: int, now: datetime) -> bool:
    """Whether an occurrence of `cron` (a minute, in zone `tz`) started within the last `duration_seconds`.

    Walks back from now, skipping whole days and hours that cannot match, so a week-long window costs a few
    hundred steps at most. Day-of-month and day-of-week must both match, as in Celery's own crontab (the
    parser monitors use), not either as in Vixie cron.
    """
    schedule = crontab(**crontab_fields(cron))
    zone = ZoneInfo(tz)
    # Wall-clock minutes in the window's zone; an occurrence is active while start <= now < start + duration.
    moment = now.astimezone(zone).replace(second=0, microsecond=0, tzinfo=None)
    earliest = (now - timedelta(seconds=duration_seconds)).astimezone(zone).replace(tzinfo=None)
    while moment > earliest:
        if (moment.month not in schedule.month_of_year or moment.day not in schedule.day_of_month
                or moment.isoweekday() % 7 not in schedule.day_of_week):
            moment = moment.replace(hour=0, minute=0) - _MINUTE  # the last minute of the day before
            continue
        if moment.hour not in schedule.hour:
            moment = moment.replace(minute=0) - _MINUTE
            continue
        minutes = [minute for minute in schedule.minute if minute <= moment.minute]
        if minutes:
            return moment.replace(minute=max(minutes)) > earliest
        moment = moment.replace(minute=0) - _MINUTE
    return False


def window_active(window: MaintenanceWindow, *, now: datetime) -> bool:
    if window.cron is None:
        return window.starts_at is not None and window.ends_at is not None and window.starts_at <= now < window.ends_at
    return cron_window_active(cron=window.cron, tz=window.timezone, duration_seconds=window.duration_seconds or 0,
                              now=now)


def _candidates(now: datetime) -> QuerySet[MaintenanceWindow]:
    """Windows that may be active now: one-off ones covering now (indexed) and every recurring one."""
    return MaintenanceWindow.objects.filter(Q(cron__isnull=False) | Q(starts_at__lte=now, ends_at__gt=now))


def maintenance_active(*, monitor: Monitor, now: datetime) -> bool:
    windows = _candidates(now).filter(owner_id=monitor.owner_id).filter(Q(monitor__isnull=True) | Q(monitor=monitor))
    return any(window_active(window, now=now) for window in windows)


def active_scope(*, now: datetime) -> Q | None:
    """Which monitors are in maintenance now, as a filter; None when none are."""
    monitor_ids: set[int] = set()
    owner_ids: set[int] = set()
    for window in _candidates(now).only("id", "owner_id", "monitor_id", "cron", "timezone", "duration_seconds",
                                        "starts_at", "ends_at"):
        if window_active(window, now=now):
            if window.monitor_id is None:
                owner_ids.add(window.owner_id)
            else:
                monitor_ids.add(window.monitor_id)
    if not monitor_ids and not owner_ids:
        return None
    return Q(pk__in=monitor_ids) | Q(owner_id__in=owner_ids)


def maintenance_sync(*, now: datetime | None = None) -> tuple[int, int, int]:
    """Put monitors into and out of `maintenance` status as windows start and end, and send the down alerts
    that ended windows deferred. Returns (entered, left, alerts released)."""
    now = now or timezone.now()
    scope = active_scope(now=now)
    entered = left = 0
    leaving = Monitor.objects.filter(status=MonitorStatus.MAINTENANCE)
    # Nothing to write most of the time: do not open a write transaction for nothing (SQLite locks for it).
    if scope is not None or leaving.exists():
        with transaction.atomic():
            if scope is not None:
                entered = (Monitor.objects.filter(scope, enabled=True).exclude(status=MonitorStatus.MAINTENANCE)
                           .update(status=MonitorStatus.MAINTENANCE))
                leaving = leaving.exclude(scope)
            # Back to what the state machine last confirmed (F: the value at update time, not a stale read).
            left = leaving.update(status=F("health"))
    released = 0
    for incident in (Incident.objects.filter(ended_at__isnull=True, alerts_deferred=True, monitor__enabled=True)
                     .exclude(monitor__status=MonitorStatus.MAINTENANCE).select_related("monitor")):
        with transaction.atomic():
            released += incident_deferred_release(incident=incident)
    return entered, left, released


# --- services for the API -------------------------------------------------------------------------------------


def window_create(*, owner: AbstractBaseUser, **fields: Any) -> MaintenanceWindow:
    window = MaintenanceWindow.objects.create(owner=owner, **fields)
    maintenance_sync()  # the window's monitors show `maintenance` at once, not at the next sweep
    return window


def window_update(*, window: MaintenanceWindow, changes: dict[str, Any]) -> MaintenanceWindow:
    for name, value in changes.items():
        setattr(window, name, value)
    window.save(update_fields=list(changes))
    maintenance_sync()
    return window


def window_delete(*, window: MaintenanceWindow) -> None:
    window.delete()
    maintenance_sync()


def window_list(*, owner: AbstractBaseUser) -> QuerySet[MaintenanceWindow]:
    return MaintenanceWindow.objects.filter(owner=owner).order_by("id")
