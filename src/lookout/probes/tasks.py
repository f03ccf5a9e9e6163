"""Celery tasks on the `probes` and `results` queues, and the push sweep: thin wrappers around the probes services."""

from datetime import UTC, datetime
from typing import Any

from celery import shared_task
from django.db import InterfaceError, OperationalError
from django.utils import timezone

from lookout.observability.metrics import DUE_AT_HEADER, schedule_lag_observe
from lookout.probes.push import push_sweep as push_sweep_run
from lookout.probes.remote import region_worker_seen, remote_results_record
from lookout.probes.runs import BatchInvalid, probe_batch_run
from lookout.probes.services import probe_run
from lookout.scheduling.regional import RECHECK_HEADER


# Scheduled probes store no Celery result (their ProbeResult row is the record); check-now asks for one.
# A database restart must not lose the result: the probe is idempotent, so it runs again after a backoff.
@shared_task(name="lookout.probes.tasks.probe_monitor", ignore_result=True,
             autoretry_for=(OperationalError, InterfaceError), retry_backoff=1, retry_backoff_max=30,
             retry_jitter=True, max_retries=5)
def probe_monitor(monitor_id: int, manual: bool = False) -> dict[str, Any] | None:
    request = probe_monitor.request
    # Beat stamps the time the probe was due (the run's round, for a monitor of several regions); check-now: none.
    headers = request.headers or {}
    due = headers.get(DUE_AT_HEADER)
    if not request.retries:  # a retry starts late on purpose; its first attempt was measured
        schedule_lag_observe(due)
    outcome = probe_run(monitor_id=monitor_id, task_id=request.id or "", manual=manual,
                        due=float(due) if isinstance(due, int | float) else None,
                        recheck=bool(headers.get(RECHECK_HEADER)))
    # Celery formats every return value (saferepr) even when it stores none: only check-now's is kept.
    return outcome if manual else None


# A batch of scheduled runs (the batched run message of issue 18; lookout.probes.runs): probed together, recorded
# together, acknowledged (acks late) once recorded. A database error retries the whole batch: its runs already
# recorded are recognised by their task ids. A malformed batch fails at once (delivering it again cannot help).
@shared_task(name="lookout.probes.tasks.probe_batch", ignore_result=True,
             autoretry_for=(OperationalError, InterfaceError), retry_backoff=1, retry_backoff_max=30,
             retry_jitter=True, max_retries=5, throws=(BatchInvalid,))
def probe_batch(runs: list[list[Any]], expires: float | None = None) -> None:
    probe_batch_run(runs=runs, expires=expires, first_attempt=not probe_batch.request.retries)


# Results of other regions' probes (lookout.probes.remote), acknowledged once recorded: a database restart retries
# them, recording each task id once.
@shared_task(name="lookout.probes.remote.results_record", ignore_result=True,
             autoretry_for=(OperationalError, InterfaceError), retry_backoff=1, retry_backoff_max=30,
             retry_jitter=True, max_retries=20)
def results_record(results: list[dict[str, Any]]) -> None:
    remote_results_record(results=results)


@shared_task(name="lookout.probes.remote.worker_seen", ignore_result=True)
def worker_seen(region: str, worker: str, in_flight: int = 0, version: str = "", at: float | None = None) -> None:
    # The heartbeat's own time, unless it is in the future (a clock ahead): then the moment it arrived.
    now = timezone.now()
    seen = min(datetime.fromtimestamp(at, UTC), now) if isinstance(at, int | float) else now
    region_worker_seen(region=region, worker=str(worker), at=seen, in_flight=int(in_flight), version=str(version))


# Registered under its first home's name: the seeded `lookout.push-sweep` schedule (a database row) names it.
@shared_task(name="lookout.monitors.tasks.push_sweep", ignore_result=True)
def push_sweep() -> int:
    return push_sweep_run()
