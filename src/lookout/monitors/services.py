"""Monitor business logic. Each service keeps a monitor and its PeriodicTask in one transaction, and every
rule (lookout.monitors.rules) is checked here, whoever calls."""

import secrets
from dataclasses import fields
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import User
from django.db import connection, transaction
from django.utils import timezone as django_timezone

from lookout.core.encryption import secret_encrypt, secret_headers_encrypt
from lookout.core.errors import ValidationFailed
from lookout.monitors.models import Monitor, MonitorStatus, MonitorType, OwnerMonitorCount
from lookout.monitors.probe_spec import regional_payload
from lookout.monitors.rules import default_timeout, spec_validate, timeout_cap
from lookout.monitors.spec import MonitorSpec, monitor_spec
from lookout.scheduling import schedules

_SCHEDULE_FIELDS = {"interval", "cron", "timezone"}
# Spec fields written to the row by the services themselves, not copied as they are.
_WRITTEN_BY_SERVICES = {"secret_headers", "basic_auth_password", "channels", "timeout"}
_COPIED = tuple(spec_field.name for spec_field in fields(MonitorSpec) if spec_field.name not in _WRITTEN_BY_SERVICES)


def push_deadline(*, monitor: Monitor, after: datetime) -> datetime:
    return after + timedelta(seconds=(monitor.interval or 0) + monitor.grace)


def _channels_set(*, monitor: Monitor, channel_ids: list[int]) -> None:
    """Name the owner's channels to alert; another owner's channel is a validation error, as a missing one."""
    # The channel model by relation, not by import: alerting builds on monitors, not the other way round.
    channel_model = monitor.channels.model
    owned = set(channel_model.objects.filter(owner_id=monitor.owner_id, pk__in=channel_ids)
                .values_list("pk", flat=True))
    missing = [pk for pk in channel_ids if pk not in owned]
    if missing:
        raise ValidationFailed({"channels": [f'Invalid pk "{pk}" - object does not exist.' for pk in missing]})
    monitor.channels.set(channel_ids)
    monitor.__dict__.pop("channel_ids", None)  # Monitor.channel_ids, if read before, is stale now


@transaction.atomic
def monitor_create(*, owner: User, spec: MonitorSpec) -> Monitor:
    """Create a monitor with its PeriodicTask (push monitors have none); ValidationFailed changes nothing."""
    spec = spec_validate(spec)
    monitor = Monitor(owner=owner, **{name: getattr(spec, name) for name in _COPIED},
                      timeout=spec.timeout if spec.timeout is not None else default_timeout(interval=spec.interval),
                      secret_headers=secret_headers_encrypt(dict(spec.secret_headers or {})),
                      basic_auth_password=secret_encrypt(spec.basic_auth_password or ""))
    if monitor.type == MonitorType.PUSH:
        monitor.push_token = secrets.token_urlsafe(24)
        monitor.push_deadline = push_deadline(monitor=monitor, after=django_timezone.now())
        monitor.save()
    else:
        monitor.periodic_task = schedules.schedule_create(interval=spec.interval, cron=spec.cron, tz=spec.timezone)
        monitor.save()
        schedules.schedule_attach(monitor.periodic_task, monitor_id=monitor.pk)
        _regional_update(monitor)
    if spec.channels:
        _channels_set(monitor=monitor, channel_ids=list(spec.channels))
    # Last: the owner's count row is locked from here to the commit, so the owner's concurrent creates queue
    # for it only this long.
    _monitor_count_add(owner_id=owner.pk, delta=1)
    return monitor


_COUNTS = OwnerMonitorCount._meta.db_table


def _monitor_count_add(*, owner_id: int, delta: int) -> None:
    """Move the owner's monitor count by `delta` in the caller's transaction (one upsert: the first monitor of
    an owner creates the row, and concurrent creates add up instead of racing to insert it)."""
    with connection.cursor() as cursor:
        # Never below 0: a count that drifted (rows deleted behind the services' back) must not fail a delete.
        cursor.execute(f"INSERT INTO {_COUNTS} (owner_id, monitors) VALUES (%s, %s) ON CONFLICT (owner_id) "
                       f"DO UPDATE SET monitors = CASE WHEN {_COUNTS}.monitors + %s > 0 "
                       f"THEN {_COUNTS}.monitors + %s ELSE 0 END",
                       [owner_id, max(delta, 0), delta, delta])


@transaction.atomic
def monitor_update(*, monitor: Monitor, spec: MonitorSpec) -> Monitor:
    """Make the monitor what `spec` says (start from monitor_spec(monitor)); a schedule change reaches beat
    without a restart. ValidationFailed changes nothing."""
    locked = Monitor.objects.select_for_update(of=("self",)).select_related("periodic_task").get(pk=monitor.pk)
    spec = spec_validate(spec, current=locked)
    current = monitor_spec(locked)
    changes: dict[str, Any] = {name: getattr(spec, name) for name in _COPIED
                               if getattr(spec, name) != getattr(current, name)}
    if spec.secret_headers is not None:
        changes["secret_headers"] = secret_headers_encrypt(dict(spec.secret_headers))
    if spec.basic_auth_password is not None:
        changes["basic_auth_password"] = secret_encrypt(spec.basic_auth_password)
    cap = timeout_cap(interval=spec.interval)
    if spec.timeout is not None:
        changes["timeout"] = spec.timeout
    elif locked.timeout > cap:
        # A shorter interval shortens the timeout the monitor had; an explicit one was validated.
        changes["timeout"] = cap
    if spec.channels is not None:
        _channels_set(monitor=locked, channel_ids=list(spec.channels))
    for name, value in changes.items():
        setattr(locked, name, value)
    if _SCHEDULE_FIELDS & changes.keys() and locked.periodic_task is not None:
        schedules.schedule_change(locked.periodic_task, interval=locked.interval, cron=locked.cron,
                                  tz=locked.timezone)
    # Name the fields: a probe may be recording status/last_checked_at on this row right now.
    locked.save(update_fields=[*changes.keys(), "updated_at"])
    if locked.periodic_task is not None:
        _regional_update(locked)
    return locked


def _regional_update(monitor: Monitor) -> None:
    """What beat sends to the monitor's other regions, kept in its PeriodicTask (unchanged unless it changed)."""
    task = monitor.periodic_task
    assert task is not None
    schedules.schedule_regional_set(task, regional_payload(monitor, current=schedules.schedule_regional(task)))


def monitor_pause(*, monitor: Monitor) -> Monitor:
    return _monitor_enable(monitor=monitor, enabled=False)


def monitor_resume(*, monitor: Monitor) -> Monitor:
    return _monitor_enable(monitor=monitor, enabled=True)


@transaction.atomic
def _monitor_enable(*, monitor: Monitor, enabled: bool) -> Monitor:
    locked = Monitor.objects.select_for_update(of=("self",)).select_related("periodic_task").get(pk=monitor.pk)
    if locked.enabled != enabled:
        locked.enabled = enabled
        # A resumed monitor is pending until its next probe (run at once) says otherwise.
        locked.status = MonitorStatus.PENDING if enabled else MonitorStatus.PAUSED
        locked.push_deadline = push_deadline(monitor=locked, after=django_timezone.now()) if enabled else None
        locked.save(update_fields=["enabled", "status", "push_deadline", "updated_at"])
        if locked.periodic_task is not None:
            schedules.schedule_enable(locked.periodic_task, enabled=enabled)
    return locked


@transaction.atomic
def monitor_delete(*, monitor: Monitor) -> None:
    # of=self: the task is a nullable (outer) join, which FOR UPDATE cannot lock.
    locked = Monitor.objects.select_for_update(of=("self",)).select_related("periodic_task").get(pk=monitor.pk)
    task = locked.periodic_task
    monitor.delete()
    if task is not None:
        schedules.schedule_delete(task)
    _monitor_count_add(owner_id=locked.owner_id, delta=-1)
