"""Running probes: check-now, and one monitor's probe — read its spec, probe with no database connection held,
record the result.

The read and the write go through this process's batchers (lookout.probes.batching): the probe's own thread
(greenlet) never holds a database connection, and waits for its result's commit before it returns.
"""

import uuid
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import InterfaceError, OperationalError, transaction
from kombu.exceptions import OperationalError as BrokerError

from lookout.config.celery_app import app
from lookout.core.errors import BrokerUnavailable, Refused
from lookout.monitors.models import IssuedTask, Monitor, MonitorType, ProbeResult
from lookout.monitors.probe_spec import PROBE_FIELDS, probe_spec
from lookout.monitors.selectors import monitors_for_probe
from lookout.observability.metrics import probe_observe
from lookout.probes.batching import Batcher
from lookout.probes.engine import Outcome, probe
from lookout.probes.results import ProbeRecord, probe_record, probe_results_record
from lookout.scheduling.schedules import PROBE_TASK

# A manual check still waiting in the queue after this long is stale: let it expire (state REVOKED).
CHECK_NOW_EXPIRES_SECONDS = 120

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
# At a light load (batched runs: a few messages a second of a few runs each) a small batch waits a little for
# others: a read (25 ms: it delays the probes) or a write (LOOKOUT_WORKER_WRITE_LINGER_SECONDS, 0.5 s: it delays
# the acknowledgement and a state change) then serves several messages. Each cost ~1-3.5 ms of CPU per message,
# more than its probes at 10 % load (bench/README.md, "Worker end to end"). A busy worker's batches are large
# and never wait.
monitor_reads: Batcher[int, Monitor | None] = Batcher(
    _monitors_read, name="lookout-monitor-reads", max_size=500, shared_errors=(OperationalError, InterfaceError),
    linger_seconds=0.025, linger_below=100)
result_writes: Batcher[tuple[int, ProbeRecord], ProbeResult | None] = Batcher(
    _results_write, name="lookout-result-writes", threads=_result_writers(), max_size=500,
    shared_errors=(OperationalError, InterfaceError), linger_seconds=settings.LOOKOUT_WORKER_WRITE_LINGER_SECONDS,
    linger_below=100)


def probe_run(*, monitor_id: int, task_id: str, manual: bool = False,
              due: float | None = None, recheck: bool = False) -> dict[str, Any] | None:
    monitor = monitor_reads.run(monitor_id)
    # A scheduled probe sent just before a pause (or delete) is dropped; a manual check still runs.
    if monitor is None or not (monitor.enabled or manual):
        return None
    spec = probe_spec(monitor)
    outcome: Outcome = probe(spec)
    probe_observe(probe_type=spec.type, success=outcome.success, seconds=outcome.response_time_ms / 1000,
                  phases=outcome.phases)
    # Returns once the result is committed: the task (acks late) is acknowledged only after that.
    record = probe_record(outcome, task_id=task_id or "", region=settings.LOOKOUT_HOME_REGION,
                          due=datetime.fromtimestamp(due, UTC) if due is not None else None, recheck=recheck)
    # A check-now's caller is waiting for its result: its batch is written at once.
    result = result_writes.run((monitor_id, record), urgent=manual)
    if result is None:
        return None
    return {
        "result_id": result.id, "monitor": monitor_id, "success": result.success,
        "status_code": result.status_code, "response_time_ms": result.response_time_ms, "error": result.error,
        "phases": result.phases, "failed_condition": result.failed_condition or None,
    }
