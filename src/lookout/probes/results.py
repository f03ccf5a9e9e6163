"""Recording probe results: the result row, the monitor's state (the state machine, in the same transaction,
under the monitor's row lock), and once-only events such as an expiring certificate.

A task's result is recorded once. Probes are acknowledged after their batch commits (acks late), so a worker
that dies between the commit and the acknowledgement has its probes delivered again, and beat may send a run
again whose confirm it never got (a run's task id is the same for every send of it): a result whose task id is
already recorded is not stored again and does not move the monitor's state a second time.
"""

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import Field

from lookout.alerting.notifications import event_notify
from lookout.alerting.state import MonitorStateChange, monitor_state_apply, monitor_state_next
from lookout.monitors.models import EventKind, Monitor, MonitorEvent, ProbeResult
from lookout.probes import recording
from lookout.probes.engine import Outcome, tls_facts_json, tls_fingerprint
from lookout.probes.rechecks import rechecks_publish
from lookout.regions.agreement import Vote, multi_region, vote
from lookout.regions.states import region_states_record
from lookout.regions.suspects import suspect_regions

logger = logging.getLogger(__name__)

# A probe delivered again runs within its message's expiry of the first attempt (its monitor's interval at most;
# check-now: 2 minutes): the first attempt's result is looked for this far back, in at most two daily partitions.
REDELIVERY_WINDOW = timedelta(days=1)


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
    # The region that probed, and the run's due time: a round of a monitor probed from several regions is the set
    # of its results with one due time (none for a check-now, which decides no round).
    region: str = ""
    due: datetime | None = None
    recheck: bool = False


def probe_record(outcome: Outcome, *, task_id: str, region: str = "", due: datetime | None = None,
                 recheck: bool = False) -> ProbeRecord:
    return ProbeRecord(
        checked_at=outcome.started_at, success=outcome.success, status_code=outcome.status_code,
        response_time_ms=outcome.response_time_ms, error=outcome.error, task_id=task_id,
        phases={phase: round(seconds * 1000, 3) for phase, seconds in outcome.phases.items()},
        tls=tls_facts_json(outcome.tls) if outcome.tls else None,
        tls_not_after=outcome.tls.not_after if outcome.tls else None,
        tls_fingerprint=tls_fingerprint(outcome.tls) if outcome.tls else "",
        failed_condition=outcome.failed_condition or "", region=region, due=due, recheck=recheck,
    )


# Monitor columns a recorded result writes: the probe's facts, its certificate and the state machine's.
_RESULT_FIELDS = ("last_checked_at", "last_response_time_ms", "last_phases", "tls_not_after", "tls_fingerprint",
                  "health", "consecutive_failures", "consecutive_successes", "streak_started_at", "status", "round")
# What recording reads of a locked monitor: the state machine's inputs, the columns it writes back as read, and
# what alerts say of the monitor. Not the rest: under gevent every packet of a batch's rows costs the writer a
# turn of the event loop, and full rows (headers, body, conditions) made a batch's lock several times slower.
_RECORD_READS = ("enabled", "status", "health", "consecutive_failures", "consecutive_successes", "streak_started_at",
                 "failure_threshold", "recovery_threshold", "last_checked_at", "tls_expiry_days", "tls_not_after",
                 "tls_fingerprint", "owner", "name", "type", "url", "regions", "confirm", "round")


def probe_result_record(*, monitor_id: int, record: ProbeRecord) -> ProbeResult | None:
    """Store a probe's result and move the monitor's state; None if the monitor was deleted meanwhile."""
    return probe_results_record(records=[(monitor_id, record)])[0]


@transaction.atomic
def probe_results_record(*, records: Sequence[tuple[int, ProbeRecord]]) -> list[ProbeResult | None]:
    """Store probes' results and move their monitors' states in one transaction (a worker's batch).

    Returns each record's stored result, in order; None where the monitor was deleted meanwhile.

    Set-based whatever the batch's size (on PostgreSQL, lookout.probes.recording): one statement locks and reads the
    monitors, one looks for task ids recorded already, one COPY stores the new results, one UPDATE writes the
    monitors; only a result that opens or closes an incident (rare) costs statements of its own.
    """
    # The row locks order concurrent results (a check-now beside a scheduled probe) and pause/resume. One
    # statement takes them in id order, so two batches locking some of the same monitors never deadlock.
    monitors = _monitors_lock(monitor_ids={monitor_id for monitor_id, _ in records})
    # Under the row locks: a result committed by another worker for the same task id is visible by now.
    recorded = _results_recorded(records=[(monitor_id, record) for monitor_id, record in records
                                          if monitor_id in monitors])
    results: list[ProbeResult | None] = []
    # Each monitor's new results: only these move its state.
    by_monitor: dict[int, list[tuple[ProbeRecord, ProbeResult]]] = {}
    fresh: list[ProbeResult] = []
    again = 0
    postgresql = connection.vendor == "postgresql"
    for monitor_id, record in records:
        monitor = monitors.get(monitor_id)
        if monitor is None:
            results.append(None)
        elif record.task_id and record.task_id in recorded:
            results.append(recorded[record.task_id])  # delivered again: the first attempt's result
            again += 1
        else:
            created = _probe_result(monitor=monitor, record=record, postgresql=postgresql)
            if record.task_id:
                recorded[record.task_id] = created  # the same delivery twice in one batch
            results.append(created)
            fresh.append(created)
            by_monitor.setdefault(monitor_id, []).append((record, created))
    if again:
        logger.info("%d probe results were recorded already (probes delivered again): stored once", again)
    _results_insert(fresh)
    # Each monitor's results in the order they were checked. Round k applies every monitor's k-th (a batch seldom
    # holds two of one monitor), then opens or closes incidents: as one result per transaction.
    ordered = [pairs if len(pairs) == 1 else sorted(pairs, key=lambda pair: pair[0].checked_at)
               for _, pairs in sorted(by_monitor.items())]
    suspects = suspect_regions() if any(multi_region(monitors[pairs[0][1].monitor_id]) for pairs in ordered) \
        else frozenset()
    rechecks: list[int] = []
    # Monitors moved and not written yet: their rows are written before any incident opens or closes (the
    # mass-failure guard counts failing monitors from the rows), else once at the end — one UPDATE in the common
    # case of a batch that changes no monitor's health.
    unsaved: dict[int, Monitor] = {}
    for k in range(max(map(len, ordered), default=0)):
        changes: list[tuple[Monitor, MonitorStateChange, ProbeResult]] = []
        for pairs in ordered:
            if k >= len(pairs):
                continue
            record, result = pairs[k]
            monitor = monitors[result.monitor_id]
            advanced = _monitor_advance(monitor=monitor, record=record, result=result, suspects=suspects)
            if advanced is None:
                continue
            unsaved[monitor.pk] = monitor
            changes += [(monitor, change, result) for change in advanced.changes
                        if change.step.went_down or change.step.went_up]
            if advanced.recheck:
                rechecks.append(monitor.pk)
        if changes:
            _monitors_result_save(monitors=list(unsaved.values()))
            unsaved.clear()
        for monitor, change, result in changes:
            monitor_state_apply(monitor=monitor, change=change, result=result)
    _monitors_result_save(monitors=list(unsaved.values()))
    region_states_record(pairs=[(monitors[result.monitor_id], record) for pairs in ordered
                                for record, result in pairs])
    if rechecks:
        transaction.on_commit(lambda: rechecks_publish(monitor_ids=rechecks))
    return results


def _monitors_lock(*, monitor_ids: set[int]) -> dict[int, Monitor]:
    """Lock and read the monitors (_RECORD_READS), by id: one statement, in id order."""
    if connection.vendor == "postgresql":
        return recording.monitors_lock(monitor_ids=monitor_ids, reads=_RECORD_READS)
    return {monitor.pk: monitor for monitor in Monitor.objects.select_for_update().only(*_RECORD_READS)
            .filter(pk__in=monitor_ids).order_by("pk")}


def _results_recorded(*, records: Sequence[tuple[int, ProbeRecord]]) -> dict[str, ProbeResult]:
    """The stored results of these records' task ids, by task id (none, unless probes were delivered again)."""
    task_ids = {record.task_id for _, record in records if record.task_id}
    if not task_ids:
        return {}
    checked = [record.checked_at for _, record in records]
    # A run's first attempt was probed before the attempt that repeats it, within the window: the bounds keep the
    # lookup to the daily partitions that can hold it.
    since, until = min(checked) - REDELIVERY_WINDOW, max(checked) + REDELIVERY_WINDOW
    monitor_ids = {monitor_id for monitor_id, _ in records}
    if connection.vendor == "postgresql":
        # Not by monitor in SQL: the planner would then scan each monitor's day of results instead of the task ids.
        stored: Iterable[ProbeResult] = [result for result in recording.results_recorded(
            task_ids=sorted(task_ids), since=since, until=until) if result.monitor_id in monitor_ids]
    else:
        stored = ProbeResult.objects.filter(task_id__in=task_ids, checked_at__gte=since, checked_at__lte=until,
                                            monitor_id__in=monitor_ids)
    return {result.task_id: result for result in stored}


def _probe_result(*, monitor: Monitor, record: ProbeRecord, postgresql: bool) -> ProbeResult:
    if not postgresql:
        return ProbeResult(
            monitor=monitor, checked_at=record.checked_at, success=record.success,
            status_code=record.status_code, response_time_ms=record.response_time_ms,
            error=record.error[:2000], task_id=record.task_id, phases=dict(record.phases),
            tls=dict(record.tls) if record.tls else None, failed_condition=record.failed_condition[:500],
            region=record.region)
    # The same values in ProbeResult's column order, without __init__'s cost per field (~10 us a result).
    result = recording.result_instance((
        None, monitor.pk, record.checked_at, record.success, record.status_code, record.response_time_ms,
        record.error[:2000], record.task_id, dict(record.phases), dict(record.tls) if record.tls else None,
        record.failed_condition[:500], record.region))
    result._state.fields_cache["monitor"] = monitor  # as ProbeResult(monitor=monitor) caches it
    return result


def _results_insert(results: list[ProbeResult]) -> None:
    """Store the new results, setting their ids."""
    if connection.vendor == "postgresql":
        recording.results_insert(results)
    else:
        ProbeResult.objects.bulk_create(results)


def _monitor_advance(*, monitor: Monitor, record: ProbeRecord, result: ProbeResult,
                     suspects: frozenset[str]) -> Vote | None:
    """Move the locked monitor, in memory, to its newest result: the state changes to apply (none for a paused
    monitor, or a round still undecided), or None when the result changes nothing of the row."""
    newer = monitor.last_checked_at is None or record.checked_at >= monitor.last_checked_at
    several = multi_region(monitor)
    # A result that finishes after a newer one must not roll the monitor's state back; of a monitor of several
    # regions, the round decides what counts (lookout.regions.agreement).
    if not newer and not several:
        return None
    fields: dict[str, Any] = {}
    if newer:
        fields = {"last_checked_at": record.checked_at, "last_response_time_ms": record.response_time_ms,
                  "last_phases": dict(record.phases)}
    if record.tls_not_after is not None:
        fields["tls_not_after"] = record.tls_not_after
        fields["tls_fingerprint"] = record.tls_fingerprint
        tls_expiry_check(monitor=monitor, record=record)
    for name, value in fields.items():
        setattr(monitor, name, value)
    if not monitor.enabled:  # a paused monitor keeps its status: results are recorded, its state does not move
        return Vote()
    if several:
        return vote(monitor=monitor, region=record.region, success=record.success, due=record.due,
                    recheck=record.recheck, checked_at=record.checked_at, suspects=suspects)
    # Confirmed transitions only (failure_threshold, recovery_threshold), in this same transaction.
    change = monitor_state_next(monitor=monitor, result=result)
    for name, value in change.fields.items():
        setattr(monitor, name, value)
    return Vote(changes=(change,))


def _monitors_result_save(*, monitors: list[Monitor]) -> None:
    """Write the result fields of monitors locked by the caller, from their attributes.

    On PostgreSQL one UPDATE from arrays (lookout.probes.recording: its SQL is the same for any number of rows, so
    it is parsed and planned cheaply; bulk_update's CASE per row and field costs ~2 ms of CPU a row to compile).
    Fields a result did not change are written back as read: the rows are locked.
    """
    if not monitors:
        return
    if connection.vendor == "postgresql":
        recording.monitors_save(monitors=monitors, names=_RESULT_FIELDS)
        return
    fields = [_table_field(name) for name in _RESULT_FIELDS]
    for monitor in monitors:  # lookout dev's SQLite
        Monitor.objects.filter(pk=monitor.pk).update(**{f.attname: getattr(monitor, f.attname) for f in fields})


def _table_field(name: str) -> "Field[Any, Any]":
    model_field = Monitor._meta.get_field(name)
    if not isinstance(model_field, Field):  # get_field also finds relations, which are no column of the table
        raise TypeError(f"Monitor.{name} is not a column of its table")
    return model_field


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
