"""Monitor business logic. Each service keeps a monitor and its PeriodicTask in one transaction."""

import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone as django_timezone
from kombu.exceptions import OperationalError

from lookout.alerting.notifications import event_notify
from lookout.alerting.services import monitor_channels_set
from lookout.alerting.state import monitor_state_apply, monitor_state_next
from lookout.monitors.encryption import secret_encrypt, secret_headers_encrypt
from lookout.monitors.models import (
    EventKind,
    IssuedTask,
    Monitor,
    MonitorEvent,
    MonitorStatus,
    MonitorType,
    ProbeResult,
)
from lookout.scheduling import schedules

DEFAULT_TIMEOUT = 10.0
MAX_TIMEOUT = 300.0
MAX_INTERVAL = 7 * 24 * 3600
# The shortest gap a 5-field crontab can have: a cron monitor's timeout cap.
CRON_MIN_PERIOD = 60
# A manual check still waiting in the queue after this long is stale: let it expire (state REVOKED).
CHECK_NOW_EXPIRES_SECONDS = 120

_SCHEDULE_FIELDS = {"interval", "cron", "timezone"}


class BrokerUnavailable(Exception):
    """The broker did not take a message; nothing was queued."""


class NotProbed(Exception):
    """Push monitors are not probed: their target calls Lookout."""


@dataclass(frozen=True)
class ProbeRecord:
    """What a finished probe reports, as recorded against its monitor."""

    checked_at: datetime
    success: bool
    status_code: int | None
    response_time_ms: float
    error: str
    task_id: str
    phases: Mapping[str, float] = field(default_factory=dict)
    tls: Mapping[str, Any] | None = None  # JSON-ready certificate facts
    tls_not_after: datetime | None = None
    tls_fingerprint: str = ""
    failed_condition: str = ""


def timeout_cap(*, interval: int | None) -> float:
    """A probe never runs longer than its interval (60 s for crontab monitors), nor than MAX_TIMEOUT."""
    return float(min(interval or CRON_MIN_PERIOD, MAX_TIMEOUT))


def default_timeout(*, interval: int | None) -> float:
    return min(DEFAULT_TIMEOUT, timeout_cap(interval=interval))


def _stored(fields: dict[str, Any]) -> dict[str, Any]:
    """API values as stored: secrets encrypted at rest."""
    stored = dict(fields)
    if "secret_headers" in stored:
        stored["secret_headers"] = secret_headers_encrypt(stored["secret_headers"] or {})
    if "basic_auth_password" in stored:
        stored["basic_auth_password"] = secret_encrypt(stored["basic_auth_password"] or "")
    return stored


def push_deadline(*, monitor: Monitor, after: datetime) -> datetime:
    return after + timedelta(seconds=(monitor.interval or 0) + monitor.grace)


@transaction.atomic
def monitor_create(*, owner: AbstractBaseUser, interval: int | None = None, cron: str | None = None,
                   timezone: str = "UTC", timeout: float | None = None, **fields: Any) -> Monitor:
    """Create a monitor from validated fields, with its PeriodicTask (push monitors have none)."""
    channels = fields.pop("channels", None)
    monitor = Monitor(owner=owner, interval=interval, cron=cron, timezone=timezone,
                      timeout=timeout if timeout is not None else default_timeout(interval=interval),
                      **_stored(fields))
    if monitor.type == MonitorType.PUSH:
        monitor.push_token = secrets.token_urlsafe(24)
        monitor.push_deadline = push_deadline(monitor=monitor, after=django_timezone.now())
        monitor.save()
    else:
        monitor.periodic_task = schedules.schedule_create(interval=interval, cron=cron, tz=timezone)
        monitor.save()
        schedules.schedule_attach(monitor.periodic_task, monitor_id=monitor.pk)
    if channels is not None:
        monitor_channels_set(monitor=monitor, channels=channels)
    return monitor


@transaction.atomic
def monitor_update(*, monitor: Monitor, changes: dict[str, Any]) -> Monitor:
    """Apply validated field changes; a schedule change reaches beat without a restart."""
    locked = Monitor.objects.select_for_update(of=("self",)).select_related("periodic_task").get(pk=monitor.pk)
    changes = dict(changes)
    channels = changes.pop("channels", None)
    if channels is not None:
        monitor_channels_set(monitor=locked, channels=channels)
    changes = _stored(changes)
    for name, value in changes.items():
        setattr(locked, name, value)
    cap = timeout_cap(interval=locked.interval)
    if "timeout" not in changes and locked.timeout > cap:
        # A shorter interval shortens the timeout the monitor had; an explicit one was validated.
        locked.timeout = cap
        changes = {**changes, "timeout": cap}
    if _SCHEDULE_FIELDS & changes.keys() and locked.periodic_task is not None:
        schedules.schedule_change(locked.periodic_task, interval=locked.interval, cron=locked.cron,
                                  tz=locked.timezone)
    # Name the fields: a probe may be recording status/last_checked_at on this row right now.
    locked.save(update_fields=[*changes.keys(), "updated_at"])
    return locked


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


def monitor_check_now(*, monitor: Monitor) -> str:
    """Queue a probe now and return its task id, which only the monitor's owner can look up."""
    if monitor.type == MonitorType.PUSH:
        raise NotProbed("Push monitors are not probed: their heartbeats arrive at push_url.")
    task_id = str(uuid.uuid4())
    with transaction.atomic():
        IssuedTask.objects.create(task_id=task_id, owner_id=monitor.owner_id, monitor=monitor)
        try:
            _check_now_publish(monitor_id=monitor.pk, task_id=task_id)
        except (OperationalError, OSError) as exc:
            raise BrokerUnavailable(str(exc)) from exc
    return task_id


def _check_now_publish(*, monitor_id: int, task_id: str) -> None:
    from lookout.config.celery_app import app
    from lookout.probes.tasks import probe_monitor

    for attempt in (1, 2):
        with app.producer_or_acquire() as producer:
            # retry=False alone does not stop kombu retrying the connection itself (~6 s with the broker
            # down): connect without retries, so the client gets its 503 at once.
            producer.connection.ensure_connection(max_retries=0)
            try:
                probe_monitor.apply_async(
                    args=[monitor_id], kwargs={"manual": True}, task_id=task_id, ignore_result=False,
                    producer=producer, retry=False, expires=CHECK_NOW_EXPIRES_SECONDS,
                )
                return
            except OperationalError:
                # The pooled connection looked open but the broker had dropped it (a broker restart, an
                # idle-connection reaper): the broker may be back, so one fresh connection gets one try.
                if attempt == 2:
                    raise


@transaction.atomic
def probe_result_record(*, monitor_id: int, record: ProbeRecord) -> ProbeResult | None:
    """Store a probe's result and move the monitor's state; None if the monitor was deleted meanwhile."""
    # The row lock orders concurrent results (a check-now beside a scheduled probe) and pause/resume.
    monitor = Monitor.objects.select_for_update().filter(pk=monitor_id).first()
    if monitor is None:
        return None
    result = ProbeResult.objects.create(
        monitor=monitor, checked_at=record.checked_at, success=record.success,
        status_code=record.status_code, response_time_ms=record.response_time_ms,
        error=record.error[:2000], task_id=record.task_id, phases=dict(record.phases),
        tls=dict(record.tls) if record.tls else None, failed_condition=record.failed_condition[:500],
    )
    # A result that finishes after a newer one must not roll the monitor's state back.
    if monitor.last_checked_at is None or record.checked_at >= monitor.last_checked_at:
        fields: dict[str, Any] = {"last_checked_at": record.checked_at,
                                  "last_response_time_ms": record.response_time_ms,
                                  "last_phases": dict(record.phases)}
        if record.tls_not_after is not None:
            fields["tls_not_after"] = record.tls_not_after
            fields["tls_fingerprint"] = record.tls_fingerprint
            tls_expiry_check(monitor=monitor, record=record)
        change = None
        if monitor.enabled:
            # Confirmed transitions only (failure_threshold, recovery_threshold), in this same transaction.
            change = monitor_state_next(monitor=monitor, result=result)
            fields.update(change.fields)
        Monitor.objects.filter(pk=monitor.pk).update(**fields)
        if change is not None:
            monitor_state_apply(monitor=monitor, change=change, result=result)
    return result


def tls_expiry_check(*, monitor: Monitor, record: ProbeRecord) -> None:
    """Raise a tls.expiring event once per certificate that expires within the monitor's tls_expiry_days."""
    if not monitor.tls_expiry_days or record.tls_not_after is None:
        return
    left = record.tls_not_after - record.checked_at
    if left > timedelta(days=monitor.tls_expiry_days):
        return
    # Race-free under the monitor's row lock (the caller's): get_or_create tells whether the event is new.
    event, created = MonitorEvent.objects.get_or_create(
        monitor=monitor, kind=EventKind.TLS_EXPIRING, key=record.tls_fingerprint,
        defaults={"data": {"not_after": record.tls_not_after.isoformat(),
                           "days_left": round(left.total_seconds() / 86400, 2),
                           **({"subject": record.tls["subject"], "issuer": record.tls["issuer"]}
                              if record.tls else {})}},
    )
    if created:
        event_notify(event=event)


def push_receive(*, token: str) -> ProbeResult | None:
    """A heartbeat: the push monitor is up, its next one is due within interval + grace."""
    monitor = Monitor.objects.filter(push_token=token, type=MonitorType.PUSH).first()
    if monitor is None:
        return None
    now = django_timezone.now()
    with transaction.atomic():
        result = probe_result_record(monitor_id=monitor.pk, record=ProbeRecord(
            checked_at=now, success=True, status_code=None, response_time_ms=0.0, error="", task_id=""))
        Monitor.objects.filter(pk=monitor.pk, enabled=True).update(push_deadline=push_deadline(monitor=monitor,
                                                                                               after=now))
    return result


def push_sweep(*, now: datetime | None = None, batch: int = 1000) -> int:
    """Record a failure for every push monitor whose heartbeat is overdue; returns how many."""
    now = now or django_timezone.now()
    overdue = 0
    while True:
        # The partial index on push_deadline makes this cheap however many push monitors exist.
        due = list(Monitor.objects.filter(type=MonitorType.PUSH, enabled=True, push_deadline__lt=now)
                   .order_by("push_deadline").values_list("pk", "interval", "push_deadline")[:batch])
        for pk, interval, deadline in due:
            with transaction.atomic():
                # Conditional: a heartbeat (or another sweep) that moved the deadline meanwhile wins.
                moved = Monitor.objects.filter(pk=pk, push_deadline=deadline).update(
                    push_deadline=now + timedelta(seconds=interval or 60))
                if moved:
                    probe_result_record(monitor_id=pk, record=ProbeRecord(
                        checked_at=now, success=False, status_code=None, response_time_ms=0.0,
                        error=f"no heartbeat since {deadline:%Y-%m-%d %H:%M:%S} UTC (interval + grace passed)",
                        task_id=""))
                    overdue += 1
        if len(due) < batch:
            return overdue
