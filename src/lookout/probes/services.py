"""Running probes: check-now, and one monitor's probe — read its spec, probe with no database connection held,
record the result.

The read and the write go through this process's batchers (lookout.probes.batching): the probe's own thread
(greenlet) never holds a database connection, and waits for its result's commit before it returns.
"""

import uuid
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import InterfaceError, OperationalError, transaction
from kombu.exceptions import OperationalError as BrokerError

from lookout.config.celery_app import app
from lookout.core.encryption import secret_decrypt, secret_headers_decrypt
from lookout.core.errors import BrokerUnavailable, Refused
from lookout.core.target_policy import target_policy
from lookout.monitors.models import IssuedTask, Monitor, MonitorType, ProbeResult
from lookout.monitors.selectors import monitors_for_probe
from lookout.observability.metrics import probe_observe
from lookout.probes.batching import Batcher
from lookout.probes.engine import PROBE_TYPES, Outcome, ProbeSpec, probe, spec_fields
from lookout.probes.results import ProbeRecord, probe_record, probe_results_record
from lookout.scheduling.schedules import PROBE_TASK

# A manual check still waiting in the queue after this long is stale: let it expire (state REVOKED).
CHECK_NOW_EXPIRES_SECONDS = 120

# ProbeSpec fields whose value is not the monitor's field of the same name. Every other field a type lists
# (lookout.probes.engine.types) is copied from the monitor as it is.
_SPEC_VALUES: dict[str, Callable[[Monitor], Any]] = {
    "body": lambda monitor: monitor.body.encode() or None,
    "headers": lambda monitor: {**(monitor.headers or {}), **secret_headers_decrypt(monitor.secret_headers)},
    "basic_auth": lambda monitor: ((monitor.basic_auth_username, secret_decrypt(monitor.basic_auth_password))
                                   if monitor.basic_auth_username else None),
    "expected_status": lambda monitor: tuple(monitor.expected_status) if monitor.expected_status else None,
    "keyword": lambda monitor: monitor.keyword or None,
    "conditions": lambda monitor: tuple(monitor.conditions or ()),
    "send": lambda monitor: monitor.send.encode() or None,
    "expect": lambda monitor: monitor.expect.encode() or None,
    "expected_answer": lambda monitor: monitor.expected_answer or None,
    "ca_pem": lambda monitor: None,  # not a monitor option: the default trust store
    "policy": lambda monitor: target_policy(),
}
# The monitor fields _SPEC_VALUES reads where they differ from the spec field's name.
_SPEC_SOURCES = {"headers": ("headers", "secret_headers"), "basic_auth": ("basic_auth_username",
                                                                           "basic_auth_password"),
                 "ca_pem": (), "policy": ()}
# The monitor fields a worker reads (smaller rows, fewer packets): enabled, and what any type's spec needs.
PROBE_FIELDS = tuple(dict.fromkeys(["enabled", *(source for probe_type in PROBE_TYPES
                                                 for name in spec_fields(probe_type)
                                                 for source in _SPEC_SOURCES.get(name, (name,)))]))


def probe_spec(monitor: Monitor) -> ProbeSpec:
    """What to probe: the fields the monitor's type reads; the others keep the engine's defaults."""
    return ProbeSpec(**{name: _SPEC_VALUES[name](monitor) if name in _SPEC_VALUES else getattr(monitor, name)
                        for name in spec_fields(monitor.type)})


def probe_check_now(*, monitor: Monitor) -> str:
    """Queue a probe now and return its task id, which only the monitor's owner can look up."""
    if monitor.type == MonitorType.PUSH:
        raise Refused("Push monitors are not probed: their heartbeats arrive at push_url.")
    task_id = str(uuid.uuid4())
    with transaction.atomic():
        IssuedTask.objects.create(task_id=task_id, owner_id=monitor.owner_id, monitor=monitor)
        try:
            _check_now_publish(monitor_id=monitor.pk, task_id=task_id)
        except (BrokerError, OSError) as exc:
            raise BrokerUnavailable(f"The broker is unavailable, nothing was queued: {exc}") from exc
    return task_id


def _check_now_publish(*, monitor_id: int, task_id: str) -> None:
    for attempt in (1, 2):
        with app.producer_or_acquire() as producer:
            # retry=False alone does not stop kombu retrying the connection itself (~6 s with the broker
            # down): connect without retries, so the client gets its 503 at once.
            producer.connection.ensure_connection(max_retries=0)
            try:
                app.send_task(PROBE_TASK, args=[monitor_id], kwargs={"manual": True}, task_id=task_id,
                              ignore_result=False, producer=producer, retry=False,
                              expires=CHECK_NOW_EXPIRES_SECONDS)
                return
            except BrokerError:
                # The pooled connection looked open but the broker had dropped it (a broker restart, an
                # idle-connection reaper): the broker may be back, so one fresh connection gets one try.
                if attempt == 2:
                    raise


def _monitors_read(monitor_ids: list[int]) -> list[Monitor | None]:
    monitors = monitors_for_probe(monitor_ids=monitor_ids, fields=PROBE_FIELDS)
    return [monitors.get(monitor_id) for monitor_id in monitor_ids]


def _results_write(records: list[tuple[int, ProbeRecord]]) -> list[ProbeResult | None]:
    return probe_results_record(records=records)


def _result_writers() -> int:
    """Four batches of results in flight at once, or fewer in a small connection pool (LOOKOUT_DB_POOL_SIZE).

    A batch waits on PostgreSQL for five round trips (begin, lock, insert, update, commit), each also waiting its
    turn in the busy worker's event loop; meanwhile the next batches are written. Four kept a worker at 500 probes
    in flight CPU-bound where two left it ~15 % idle (bench/probes.py). Each writer and the reader hold a
    connection while busy; a pool of 4 or more keeps two for other tasks.
    """
    pool = settings.DATABASES["default"].get("OPTIONS", {}).get("pool")
    return max(1, min(4, pool["max_size"] - 3)) if isinstance(pool, dict) else 4


# One of each per process, shared by every probe it runs. A database error is a whole batch's, not one probe's:
# each probe's task gets it at once and retries (probe_monitor's autoretry).
monitor_reads: Batcher[int, Monitor | None] = Batcher(
    _monitors_read, name="lookout-monitor-reads", max_size=500, shared_errors=(OperationalError, InterfaceError))
result_writes: Batcher[tuple[int, ProbeRecord], ProbeResult | None] = Batcher(
    _results_write, name="lookout-result-writes", threads=_result_writers(), max_size=500,
    shared_errors=(OperationalError, InterfaceError))


def probe_run(*, monitor_id: int, task_id: str, manual: bool = False) -> dict[str, Any] | None:
    monitor = monitor_reads.run(monitor_id)
    # A scheduled probe sent just before a pause (or delete) is dropped; a manual check still runs.
    if monitor is None or not (monitor.enabled or manual):
        return None
    spec = probe_spec(monitor)
    outcome: Outcome = probe(spec)
    probe_observe(probe_type=spec.type, success=outcome.success, seconds=outcome.response_time_ms / 1000,
                  phases=outcome.phases)
    # Returns once the result is committed: the task (acks late) is acknowledged only after that.
    result = result_writes.run((monitor_id, probe_record(outcome, task_id=task_id or "")))
    if result is None:
        return None
    return {
        "result_id": result.id, "monitor": monitor_id, "success": result.success,
        "status_code": result.status_code, "response_time_ms": result.response_time_ms, "error": result.error,
        "phases": result.phases, "failed_condition": result.failed_condition or None,
    }
