"""Celery tasks on the `probes` queue, and the push sweep: thin wrappers around the probes services."""

from typing import Any

from celery import shared_task
from django.db import InterfaceError, OperationalError

from lookout.observability.metrics import DUE_AT_HEADER, schedule_lag_observe
from lookout.probes.push import push_sweep as push_sweep_run
from lookout.probes.services import probe_run


# Scheduled probes store no Celery result (their ProbeResult row is the record); check-now asks for one.
# A database restart must not lose the result: the probe is idempotent, so it runs again after a backoff.
@shared_task(name="lookout.probes.tasks.probe_monitor", ignore_result=True,
             autoretry_for=(OperationalError, InterfaceError), retry_backoff=1, retry_backoff_max=30,
             retry_jitter=True, max_retries=5)
def probe_monitor(monitor_id: int, manual: bool = False) -> dict[str, Any] | None:
    request = probe_monitor.request
    if not request.retries:  # a retry starts late on purpose; its first attempt was measured
        # Beat stamps the time the probe was due; check-now messages carry none.
        schedule_lag_observe((request.headers or {}).get(DUE_AT_HEADER))
    outcome = probe_run(monitor_id=monitor_id, task_id=request.id or "", manual=manual)
    # Celery formats every return value (saferepr) even when it stores none: only check-now's is kept.
    return outcome if manual else None


# Registered under its first home's name: the seeded `lookout.push-sweep` schedule (a database row) names it.
@shared_task(name="lookout.monitors.tasks.push_sweep", ignore_result=True)
def push_sweep() -> int:
    return push_sweep_run()
