"""Monitor business logic. Each service keeps a monitor and its PeriodicTask in one transaction."""

import secrets
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.utils import timezone as django_timezone
from kombu.exceptions import OperationalError

from lookout.alerting.notifications import event_notify
from lookout.alerting.services import monitor_channels_set
from lookout.alerting.state import MonitorStateChange, monitor_state_apply, monitor_state_next
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


# Monitor columns a recorded result writes: the probe's facts, its certificate and the state machine's.
_RESULT_FIELDS = ("last_checked_at", "last_response_time_ms", "last_phases", "tls_not_after", "tls_fingerprint",
                  "health", "consecutive_failures", "consecutive_successes", "streak_started_at", "status")
# What recording reads of a locked monitor: the state machine's inputs, the columns it writes back as read, and
# what alerts say of the monitor. Not the rest: under gevent every packet of a batch's rows costs the writer a
# turn of the event loop, and full rows (headers, body, conditions) made a batch's lock several times slower.
_RECORD_READS = ("enabled", "status", "health", "consecutive_failures", "consecutive_successes", "streak_started_at",
                 "failure_threshold", "recovery_threshold", "last_checked_at", "tls_expiry_days", "tls_not_after",
                 "tls_fingerprint", "owner", "name", "type", "url")


def probe_result_record(*, monitor_id: int, record: ProbeRecord) -> ProbeResult | None:
    """Store a probe's result and move the monitor's state; None if the monitor was deleted meanwhile."""
    return probe_results_record(records=[(monitor_id, record)])[0]


@transaction.atomic
def probe_results_record(*, records: Sequence[tuple[int, ProbeRecord]]) -> list[ProbeResult | None]:
    """Store probes' results and move their monitors' states in one transaction (a worker's batch).

    Returns each record's stored result, in order; None where the monitor was deleted meanwhile.
    """
    # The row locks order concurrent results (a check-now beside a scheduled probe) and pause/resume. One
    # statement takes them in id order, so two batches locking some of the same monitors never deadlock.
    monitors = {monitor.pk: monitor for monitor in Monitor.objects.select_for_update().only(*_RECORD_READS)
                .filter(pk__in={monitor_id for monitor_id, _ in records}).order_by("pk")}
    results = [_probe_result(monitor=monitors[monitor_id], record=record) if monitor_id in monitors else None
               for monitor_id, record in records]
    ProbeResult.objects.bulk_create([result for result in results if result is not None])
    # Each monitor's results in the order they were checked. Round k applies every monitor's k-th (a batch seldom
    # holds two of one monitor), writes the rows, then opens or closes incidents: as one result per transaction.
    by_monitor: dict[int, list[tuple[ProbeRecord, ProbeResult]]] = {}
    for (monitor_id, record), result in zip(records, results, strict=True):
        if result is not None:
            by_monitor.setdefault(monitor_id, []).append((record, result))
    ordered = [sorted(pairs, key=lambda pair: pair[0].checked_at) for _, pairs in sorted(by_monitor.items())]
    for k in range(max(map(len, ordered), default=0)):
        moved: list[Monitor] = []
        changes: list[tuple[Monitor, MonitorStateChange, ProbeResult]] = []
        for pairs in ordered:
            if k >= len(pairs):
                continue
            record, result = pairs[k]
            monitor = monitors[result.monitor_id]
            # A result that finishes after a newer one must not roll the monitor's state back.
            if monitor.last_checked_at is not None and record.checked_at < monitor.last_checked_at:
                continue
            change = _monitor_advance(monitor=monitor, record=record, result=result)
            moved.append(monitor)
            if change is not None:
                changes.append((monitor, change, result))
        _monitors_result_save(monitors=moved)
        for monitor, change, result in changes:
            monitor_state_apply(monitor=monitor, change=change, result=result)
    return results


def _probe_result(*, monitor: Monitor, record: ProbeRecord) -> ProbeResult:
    return ProbeResult(
        monitor=monitor, checked_at=record.checked_at, success=record.success,
        status_code=record.status_code, response_time_ms=record.response_time_ms,
        error=record.error[:2000], task_id=record.task_id, phases=dict(record.phases),
        tls=dict(record.tls) if record.tls else None, failed_condition=record.failed_condition[:500],
    )


def _monitor_advance(*, monitor: Monitor, record: ProbeRecord, result: ProbeResult) -> MonitorStateChange | None:
    """Move the locked monitor, in memory, to its newest result; the state change, None for a paused monitor."""
    fields: dict[str, Any] = {"last_checked_at": record.checked_at, "last_response_time_ms": record.response_time_ms,
                              "last_phases": dict(record.phases)}
    if record.tls_not_after is not None:
        fields["tls_not_after"] = record.tls_not_after
        fields["tls_fingerprint"] = record.tls_fingerprint
        tls_expiry_check(monitor=monitor, record=record)
    change = None
    if monitor.enabled:  # a paused monitor keeps its status: results are recorded, its state does not move
        # Confirmed transitions only (failure_threshold, recovery_threshold), in this same transaction.
        change = monitor_state_next(monitor=monitor, result=result)
        fields.update(change.fields)
    for name, value in fields.items():
        setattr(monitor, name, value)
    return change


def _monitors_result_save(*, monitors: list[Monitor]) -> None:
    """Write the result fields of monitors locked by the caller, from their attributes.

    On PostgreSQL one UPDATE from arrays, as Django's bulk_create inserts (its SQL is the same for any number of
    rows, so it is parsed and planned cheaply); bulk_update's CASE per row and field costs ~2 ms of CPU a row to
    compile (measured). Fields a result did not change are written back as read: the rows are locked.
    """
    if not monitors:
        return
    fields = [Monitor._meta.get_field(name) for name in _RESULT_FIELDS]
    if connection.vendor != "postgresql":  # lookout dev's SQLite
        for monitor in monitors:
            Monitor.objects.filter(pk=monitor.pk).update(**{f.attname: getattr(monitor, f.attname) for f in fields})
        return
    columns = [Monitor._meta.pk, *fields]
    quote = connection.ops.quote_name
    # As bulk_create: no length in the array types (varchar[], not varchar(16)[]).
    arrays = ", ".join(f"(%s)::{column.db_type(connection).split('(')[0]}[]" for column in columns)
    sql = (f"UPDATE {quote(Monitor._meta.db_table)} AS m SET "
           + ", ".join(f"{quote(f.column)} = v.{quote(f.column)}" for f in fields)
           + f" FROM UNNEST({arrays}) AS v({', '.join(quote(column.column) for column in columns)})"
           + f" WHERE m.{quote(columns[0].column)} = v.{quote(columns[0].column)}")
    # Only JSON needs adapting for psycopg (Django's preparation of the others is a costly no-op on PostgreSQL).
    json = {column for column in columns if column.get_internal_type() == "JSONField"}
    params = [[column.get_db_prep_save(getattr(monitor, column.attname), connection) if column in json
               else getattr(monitor, column.attname) for monitor in monitors] for column in columns]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


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
