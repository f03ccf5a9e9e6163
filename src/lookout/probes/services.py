"""Run one monitor's probe: read its spec, probe with no database connection held, record the result.

The read and the write go through this process's batchers (lookout.probes.batching): the probe's own thread
(greenlet) never holds a database connection, and waits for its result's commit before it returns.
"""

import hashlib
from typing import Any

from django.conf import settings
from django.db import InterfaceError, OperationalError

from lookout.monitors.encryption import secret_decrypt, secret_headers_decrypt
from lookout.monitors.models import Monitor, ProbeResult
from lookout.monitors.selectors import monitors_for_probe
from lookout.monitors.services import ProbeRecord, probe_results_record
from lookout.observability.metrics import probe_observe
from lookout.probes.batching import Batcher
from lookout.probes.engine import Outcome, ProbeSpec, TlsFacts, probe
from lookout.probes.policy import target_policy

# The monitor fields probe_spec and probe_run read: a worker reads only these (smaller rows, fewer packets).
PROBE_FIELDS = ("enabled", "url", "type", "method", "body", "headers", "secret_headers", "basic_auth_username",
                "basic_auth_password", "follow_redirects", "max_redirects", "timeout", "expected_status", "keyword",
                "max_body_bytes", "ip_version", "verify_tls", "conditions", "send", "expect", "record_type",
                "expected_answer")


def probe_spec(monitor: Monitor) -> ProbeSpec:
    headers = {**(monitor.headers or {}), **secret_headers_decrypt(monitor.secret_headers)}
    basic_auth = ((monitor.basic_auth_username, secret_decrypt(monitor.basic_auth_password))
                  if monitor.basic_auth_username else None)
    return ProbeSpec(
        url=monitor.url, type=monitor.type, method=monitor.method, body=monitor.body.encode() or None,
        headers=headers, basic_auth=basic_auth, follow_redirects=monitor.follow_redirects,
        max_redirects=monitor.max_redirects, timeout=monitor.timeout,
        expected_status=tuple(monitor.expected_status) if monitor.expected_status else None,
        keyword=monitor.keyword or None, max_body_bytes=monitor.max_body_bytes, ip_version=monitor.ip_version,
        verify_tls=monitor.verify_tls, conditions=tuple(monitor.conditions or ()),
        send=monitor.send.encode() or None, expect=monitor.expect.encode() or None,
        record_type=monitor.record_type, expected_answer=monitor.expected_answer or None,
        policy=target_policy(),
    )


def tls_facts_json(facts: TlsFacts) -> dict[str, Any]:
    return {"not_after": facts.not_after.isoformat(), "not_before": facts.not_before.isoformat(),
            "issuer": facts.issuer, "subject": facts.subject, "days_left": round(facts.days_left, 2),
            "version": facts.version, "verified": facts.verified}


def tls_fingerprint(facts: TlsFacts) -> str:
    """Identifies one certificate (a renewal changes it), so an expiry warning goes out once per certificate."""
    identity = f"{facts.subject}|{facts.issuer}|{facts.not_before.isoformat()}|{facts.not_after.isoformat()}"
    return hashlib.sha256(identity.encode()).hexdigest()


def probe_record(outcome: Outcome, *, task_id: str) -> ProbeRecord:
    return ProbeRecord(
        checked_at=outcome.started_at, success=outcome.success, status_code=outcome.status_code,
        response_time_ms=outcome.response_time_ms, error=outcome.error, task_id=task_id,
        phases={phase: round(seconds * 1000, 3) for phase, seconds in outcome.phases.items()},
        tls=tls_facts_json(outcome.tls) if outcome.tls else None,
        tls_not_after=outcome.tls.not_after if outcome.tls else None,
        tls_fingerprint=tls_fingerprint(outcome.tls) if outcome.tls else "",
        failed_condition=outcome.failed_condition or "",
    )


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
