"""A batch of scheduled runs (one `lookout.probes.tasks.probe_batch` message): read, probe, record, together.

Beat sends the runs of one queue, due second and expiry second as one message of up to LOOKOUT_RUN_BATCH_SIZE runs
(the batched run message, issue 18): `runs` = [[monitor_id, task_id, due], ...] and the batch's `expires`. A single
run's fixed costs (a message to decode, spawn, trace and acknowledge, a read and a write to wait for) are paid once
per batch here: one read of all its monitors, every run probed concurrently (bounded per process by
LOOKOUT_WORKER_PROBES_IN_FLIGHT), all results recorded in one call, and only then does the task return (acks late:
a worker killed mid-batch has the whole batch delivered again, and recording knows each run by its task id).
"""

import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from django.conf import settings

from lookout.batching import InFlight
from lookout.monitors.models import Monitor
from lookout.monitors.probe_spec import probe_spec
from lookout.observability.metrics import probe_observe, schedule_lag_observe
from lookout.probes.engine import probe
from lookout.probes.results import ProbeRecord, probe_record
from lookout.probes.services import monitor_reads, result_writes

logger = logging.getLogger(__name__)

# One per process: every batch this worker runs shares its probes' slots.
runs_in_flight = InFlight(settings.LOOKOUT_WORKER_PROBES_IN_FLIGHT)

Run = tuple[int, str, float]


class BatchInvalid(ValueError):
    """A batch message this worker cannot read: delivering it again cannot help."""


def batch_runs(runs: Sequence[Any]) -> list[Run]:
    """The message's runs, checked: [monitor_id, task_id, due] each."""
    parsed: list[Run] = []
    for run in runs:
        try:
            monitor_id, task_id, due = run
            if isinstance(monitor_id, bool) or not isinstance(monitor_id, int):
                raise TypeError(f"monitor {monitor_id!r} is not a monitor id")
            parsed.append((monitor_id, str(task_id), float(due)))
        except (TypeError, ValueError) as exc:
            raise BatchInvalid(f"malformed run {run!r} in a batch: {exc}") from exc
    return parsed


def probe_batch_run(*, runs: Sequence[Any], expires: float | None, first_attempt: bool = True) -> int:
    """Probe every run of the batch and record their results; returns how many were recorded.

    Dropped: the runs of a monitor deleted or paused since beat sent them, and runs not started before the batch
    expired (the next run of the same monitor is due by then). `first_attempt` false (a retry after a database
    error): lags are not observed again, a retry starts late on purpose.
    """
    batch = batch_runs(runs)
    if not batch:
        return 0
    monitor_ids = list(dict.fromkeys(monitor_id for monitor_id, _, _ in batch))
    # One read for the batch, through the process's reader: batches arriving together share its query too.
    monitors = dict(zip(monitor_ids, monitor_reads.run_many(monitor_ids), strict=True))
    region = settings.LOOKOUT_HOME_REGION

    def run_one(run: Run) -> tuple[int, ProbeRecord] | None:
        monitor_id, task_id, due = run
        monitor: Monitor | None = monitors[monitor_id]
        if monitor is None or not monitor.enabled:
            return None
        started = time.time()
        if expires is not None and started >= expires:
            return None  # waited past its expiry for a slot: the next run is due already
        if first_attempt:
            schedule_lag_observe(due, started_at=started)
        spec = probe_spec(monitor)
        outcome = probe(spec)
        probe_observe(probe_type=spec.type, success=outcome.success, seconds=outcome.response_time_ms / 1000,
                      phases=outcome.phases)
        return monitor_id, probe_record(outcome, task_id=task_id, region=region,
                                        due=datetime.fromtimestamp(due, UTC))

    records = [record for record in runs_in_flight.map(run_one, batch) if record is not None]
    if len(records) < len(batch):
        logger.debug("batch of %d runs: %d dropped (monitor gone or paused, or expired)",
                     len(batch), len(batch) - len(records))
    if records:
        # Returns once committed: the message is acknowledged (acks late) only after that.
        result_writes.run_many(records)
    return len(records)
