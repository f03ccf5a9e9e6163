"""Run one monitor's probe: read its spec, probe with no database connection held, record the result."""

import hashlib
from typing import Any

from django.db import connection

from lookout.monitors.encryption import secret_decrypt, secret_headers_decrypt
from lookout.monitors.models import Monitor
from lookout.monitors.selectors import monitor_for_probe
from lookout.monitors.services import ProbeRecord, probe_result_record
from lookout.observability.metrics import probe_observe
from lookout.probes.engine import Outcome, ProbeSpec, TlsFacts, probe
from lookout.probes.policy import target_policy


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
    probe_observe(probe_type=spec.type, success=outcome.success, seconds=outcome.response_time_ms / 1000,
                  phases=outcome.phases)
    result = probe_result_record(monitor_id=monitor_id, record=probe_record(outcome, task_id=task_id or ""))
    if result is None:
        return None
    return {
        "result_id": result.pk, "monitor": monitor_id, "success": result.success,
        "status_code": result.status_code, "response_time_ms": result.response_time_ms, "error": result.error,
        "phases": result.phases, "failed_condition": result.failed_condition or None,
    }
