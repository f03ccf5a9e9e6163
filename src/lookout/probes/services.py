"""Run one monitor's probe: read its spec, probe with no database connection held, record the result."""

from typing import Any

from django.db import connection

from lookout.monitors.models import Monitor
from lookout.monitors.selectors import monitor_for_probe
from lookout.monitors.services import ProbeRecord, probe_result_record
from lookout.observability.metrics import probe_observe
from lookout.probes.engine import Outcome, ProbeSpec, probe


def probe_spec(monitor: Monitor) -> ProbeSpec:
    return ProbeSpec(
        url=monitor.url, method=monitor.method, timeout=monitor.timeout,
        expected_status=tuple(monitor.expected_status) if monitor.expected_status else None,
        keyword=monitor.keyword or None, headers=dict(monitor.headers or {}),
    )


def probe_run(*, monitor_id: int, task_id: str, manual: bool = False) -> dict[str, Any] | None:
    monitor = monitor_for_probe(monitor_id=monitor_id)
    # A scheduled probe sent just before a pause (or delete) is dropped; a manual check still runs.
    if monitor is None or not (monitor.enabled or manual):
        return None
    spec = probe_spec(monitor)
    if not connection.in_atomic_block:
        # Give the connection back before waiting on the network: probes must not be capped by the DB.
        connection.close()
    outcome: Outcome = probe(spec)
    probe_observe(probe_type="http", success=outcome.success, seconds=outcome.response_time_ms / 1000)
    result = probe_result_record(monitor_id=monitor_id, record=ProbeRecord(
        checked_at=outcome.started_at, success=outcome.success, status_code=outcome.status_code,
        response_time_ms=outcome.response_time_ms, error=outcome.error, task_id=task_id or "",
    ))
    if result is None:
        return None
    return {
        "result_id": result.pk, "monitor": monitor_id, "success": result.success,
        "status_code": result.status_code, "response_time_ms": result.response_time_ms, "error": result.error,
    }
