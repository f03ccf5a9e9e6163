"""Monitor business logic. Each service keeps a monitor and its PeriodicTask in one transaction."""

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from kombu.exceptions import OperationalError

from lookout.monitors.models import IssuedTask, Monitor, MonitorStatus, ProbeResult
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


@dataclass(frozen=True)
class ProbeRecord:
    """What a finished probe reports, as recorded against its monitor."""

    checked_at: datetime
    success: bool
    status_code: int | None
    response_time_ms: float
    error: str
    task_id: str


def timeout_cap(*, interval: int | None) -> float:
    """A probe never runs longer than its interval (60 s for crontab monitors), nor than MAX_TIMEOUT."""
    return float(min(interval or CRON_MIN_PERIOD, MAX_TIMEOUT))


def default_timeout(*, interval: int | None) -> float:
    return min(DEFAULT_TIMEOUT, timeout_cap(interval=interval))


@transaction.atomic
def monitor_create(*, owner: AbstractBaseUser, name: str, url: str, interval: int | None = None,
                   cron: str | None = None, timezone: str = "UTC", timeout: float | None = None,
                   method: str = "GET", expected_status: list[int] | None = None,
                   keyword: str | None = None, headers: dict[str, str] | None = None) -> Monitor:
    task = schedules.schedule_create(interval=interval, cron=cron, tz=timezone)
    monitor = Monitor.objects.create(
        owner=owner, name=name, url=url, method=method, interval=interval, cron=cron, timezone=timezone,
        timeout=timeout if timeout is not None else default_timeout(interval=interval),
        expected_status=expected_status, keyword=keyword, headers=headers or {}, periodic_task=task,
    )
    schedules.schedule_attach(task, monitor_id=monitor.pk)
    return monitor


@transaction.atomic
def monitor_update(*, monitor: Monitor, changes: dict[str, Any]) -> Monitor:
    """Apply validated field changes; a schedule change reaches beat without a restart."""
    locked = Monitor.objects.select_for_update().select_related("periodic_task").get(pk=monitor.pk)
    for field, value in changes.items():
        setattr(locked, field, value)
    cap = timeout_cap(interval=locked.interval)
    if "timeout" not in changes and locked.timeout > cap:
        # A shorter interval shortens the timeout the monitor had; an explicit one was validated.
        locked.timeout = cap
        changes = {**changes, "timeout": cap}
    if _SCHEDULE_FIELDS & changes.keys():
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
    locked = Monitor.objects.select_for_update().select_related("periodic_task").get(pk=monitor.pk)
    if locked.enabled != enabled:
        locked.enabled = enabled
        # A resumed monitor is pending until its next probe (run at once) says otherwise.
        locked.status = MonitorStatus.PENDING if enabled else MonitorStatus.PAUSED
        locked.save(update_fields=["enabled", "status", "updated_at"])
        schedules.schedule_enable(locked.periodic_task, enabled=enabled)
    return locked


@transaction.atomic
def monitor_delete(*, monitor: Monitor) -> None:
    task = Monitor.objects.select_for_update().select_related("periodic_task").get(pk=monitor.pk).periodic_task
    monitor.delete()
    schedules.schedule_delete(task)


def monitor_check_now(*, monitor: Monitor) -> str:
    """Queue a probe now and return its task id, which only the monitor's owner can look up."""
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
        error=record.error[:2000], task_id=record.task_id,
    )
    # A result that finishes after a newer one must not roll the monitor's state back.
    if monitor.last_checked_at is None or record.checked_at >= monitor.last_checked_at:
        fields: dict[str, Any] = {"last_checked_at": record.checked_at,
                                  "last_response_time_ms": record.response_time_ms}
        if monitor.enabled:
            fields["status"] = MonitorStatus.UP if record.success else MonitorStatus.DOWN
        Monitor.objects.filter(pk=monitor.pk).update(**fields)
    return result
