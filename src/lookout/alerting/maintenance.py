"""Maintenance windows: when they are active, the monitors' `maintenance` status, and alerts deferred by them.

During a window, probes still run and are recorded and incidents still open (the history stays true), but
their down alerts are held back. An incident still open when the window ends gets its down alert then; one
that recovered inside the window never alerts (nor its recovery).
"""

from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from lookout.alerting.incidents import incident_deferred_release
from lookout.alerting.models import Incident, MaintenanceWindow
from lookout.core.crontab import crontab_expanded, crontab_fields, timezone_validate
from lookout.core.errors import ValidationFailed
from lookout.monitors.models import Monitor, MonitorStatus

MIN_DURATION_SECONDS = 60
MAX_DURATION_SECONDS = 7 * 24 * 3600
_MINUTE = timedelta(minutes=1)


def cron_window_active(*, cron: str, tz: str, duration_seconds: int, now: datetime) -> bool:
    """Whether an occurrence of `cron` (a minute, in zone `tz`) started within the last `duration_seconds`.

    Walks back from now, skipping whole days and hours that cannot match, so a week-long window costs a few
    hundred steps at most. Day-of-month and day-of-week must both match, as in Celery's own crontab (the
    parser monitors use), not either as in Vixie cron.
    """
    schedule = crontab_expanded(cron)
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


@dataclass(frozen=True, kw_only=True)
class WindowSpec:
    name: str = ""
    monitor: int | None = None  # one of the owner's monitors (its id); None: all of them
    starts_at: datetime | None = None  # a one-off window: starts_at..ends_at
    ends_at: datetime | None = None
    cron: str | None = None  # a recurring one: each occurrence starts at cron, in timezone, for duration_seconds
    timezone: str = "UTC"
    duration_seconds: int | None = None


def window_spec(window: MaintenanceWindow) -> WindowSpec:
    """The window as it stands: change it with dataclasses.replace and pass it to window_update."""
    return WindowSpec(name=window.name, monitor=window.monitor_id, starts_at=window.starts_at, ends_at=window.ends_at,
                      cron=window.cron, timezone=window.timezone, duration_seconds=window.duration_seconds)


def _window_validate(spec: WindowSpec, *, owner: User) -> WindowSpec:
    """The spec as stored (normalized crontab), or ValidationFailed naming each field that breaks a rule."""
    errors: dict[str, list[str]] = {}
    if len(spec.name) > 200:
        errors["name"] = ["Ensure this field has no more than 200 characters."]
    if spec.monitor is not None and not Monitor.objects.filter(pk=spec.monitor, owner=owner).exists():
        errors["monitor"] = [f'Invalid pk "{spec.monitor}" - object does not exist.']
    try:
        timezone_validate(spec.timezone)
    except ValueError as exc:
        errors["timezone"] = [str(exc)]
    one_off = spec.starts_at is not None or spec.ends_at is not None
    recurring = spec.cron is not None or spec.duration_seconds is not None
    cron = spec.cron
    if one_off == recurring:
        errors["non_field_errors"] = [
            "Give either starts_at and ends_at (a one-off window) or cron and duration_seconds (a recurring one); "
            "send null for the other kind's fields."]
    elif one_off:
        for name in ("starts_at", "ends_at"):
            if getattr(spec, name) is None:
                errors[name] = ["Required for a one-off window."]
        if spec.starts_at is not None and spec.ends_at is not None and spec.ends_at <= spec.starts_at:
            errors["ends_at"] = ["The window must end after it starts."]
    else:
        for name in ("cron", "duration_seconds"):
            if getattr(spec, name) is None:
                errors[name] = ["Required for a recurring window."]
        if cron is not None:
            try:
                crontab_fields(cron)
                cron = " ".join(cron.split())
            except ValueError as exc:
                errors["cron"] = [str(exc)]
        duration = spec.duration_seconds
        if duration is not None and not MIN_DURATION_SECONDS <= duration <= MAX_DURATION_SECONDS:
            errors["duration_seconds"] = [f"Must be between {MIN_DURATION_SECONDS} and {MAX_DURATION_SECONDS}."]
    if errors:
        raise ValidationFailed(errors)
    return replace(spec, cron=cron)


def _window_values(spec: WindowSpec) -> dict[str, Any]:
    values = {spec_field.name: getattr(spec, spec_field.name) for spec_field in fields(WindowSpec)}
    values["monitor_id"] = values.pop("monitor")
    return values


def window_create(*, owner: User, spec: WindowSpec) -> MaintenanceWindow:
    """Create a window; ValidationFailed changes nothing."""
    window = MaintenanceWindow.objects.create(owner=owner, **_window_values(_window_validate(spec, owner=owner)))
    maintenance_sync()  # the window's monitors show `maintenance` at once, not at the next sweep
    return window


def window_update(*, window: MaintenanceWindow, spec: WindowSpec) -> MaintenanceWindow:
    """Make the window what `spec` says (start from window_spec(window)); ValidationFailed changes nothing."""
    values = _window_values(_window_validate(spec, owner=window.owner))
    for name, value in values.items():
        setattr(window, name, value)
    window.save(update_fields=list(values))
    maintenance_sync()
    return window


def window_delete(*, window: MaintenanceWindow) -> None:
    window.delete()
    maintenance_sync()


def window_list(*, owner: User) -> QuerySet[MaintenanceWindow]:
    return MaintenanceWindow.objects.filter(owner=owner).order_by("id")
