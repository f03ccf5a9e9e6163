"""The RUN (home -> region) and RESULT (region -> home) messages, as JSON (the regions contract, issue 14).

A RUN carries the monitor's public spec in the clear and its secrets (headers, basic auth) sealed under the
region's key; a RESULT echoes the run's identity (monitor, region, due, task id, token) beside the outcome.
"""

from collections.abc import Mapping
from typing import Any

from lookout.agent.keys import SecretsRefused, secrets_open
from lookout.probes.engine import Outcome, ProbeSpec, TargetPolicy, tls_facts_json, tls_fingerprint

# The ProbeSpec fields a RUN carries. Not basic_auth (sealed), policy and user_agent (the prober's own), ca_pem
# (no monitor option).
SPEC_FIELDS = ("url", "type", "method", "body", "headers", "follow_redirects", "max_redirects", "expected_status",
               "keyword", "max_body_bytes", "ip_version", "verify_tls", "conditions", "send", "expect",
               "record_type", "expected_answer", "timeout")
_BYTES_FIELDS = ("body", "send", "expect")
# Checked here: the engine trusts its spec's types (a spec built at home is typed), a message is only JSON.
_NUMBER_FIELDS: dict[str, type] = {"timeout": float, "max_redirects": int, "max_body_bytes": int}


class RunInvalid(Exception):
    """A RUN message this prober cannot probe (malformed, or its secrets cannot be opened)."""


def spec_json(spec: ProbeSpec) -> dict[str, Any]:
    """The RUN's "spec": the public fields (the caller leaves secret headers out of spec.headers)."""
    values: dict[str, Any] = {name: getattr(spec, name) for name in SPEC_FIELDS}
    for name in _BYTES_FIELDS:
        if values[name] is not None:
            values[name] = values[name].decode()
    values["headers"] = dict(spec.headers)
    values["expected_status"] = list(spec.expected_status) if spec.expected_status is not None else None
    values["conditions"] = list(spec.conditions)
    return values


def run_spec(run: Mapping[str, Any], *, key: str, policy: TargetPolicy, user_agent: str) -> ProbeSpec:
    """What to probe for this RUN: its public spec with its opened secrets, under this prober's policy."""
    if not isinstance(run.get("monitor"), int) or isinstance(run.get("monitor"), bool):
        raise RunInvalid(f"malformed run: monitor {run.get('monitor')!r} is not a monitor id")
    try:
        public = run["spec"]
        # Fields of a newer home are left out rather than refusing every run until the agent is upgraded.
        values: dict[str, Any] = {name: public[name] for name in SPEC_FIELDS if name in public}
        for name in _BYTES_FIELDS:
            if values.get(name) is not None:
                values[name] = str(values[name]).encode()
        for name, number in _NUMBER_FIELDS.items():
            if name in values:
                values[name] = number(values[name])
        if values.get("ip_version") is not None:
            values["ip_version"] = int(values["ip_version"])
        if values.get("expected_status") is not None:
            values["expected_status"] = tuple(int(status) for status in values["expected_status"])
        values["conditions"] = tuple(values.get("conditions") or ())
        try:
            headers, basic_auth = secrets_open(key, run.get("sealed") or "")
        except SecretsRefused as exc:
            raise RunInvalid(f"run of monitor {run.get('monitor')!r} refused: {exc}") from exc
        # A secret header wins over a public one of the same name, as at home.
        values["headers"] = {**(values.get("headers") or {}), **headers}
        return ProbeSpec(**values, basic_auth=basic_auth, policy=policy, user_agent=user_agent)
    except RunInvalid:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise RunInvalid(f"malformed run of monitor {run.get('monitor')!r}: {type(exc).__name__}: {exc}") from exc


def result_json(outcome: Outcome, run: Mapping[str, Any], *, worker: str) -> dict[str, Any]:
    """The RESULT of a RUN, in the shape home records (phases in ms, TLS facts as stored at home)."""
    return {
        "monitor": run["monitor"], "region": run["region"], "due": run.get("due"), "task_id": run.get("task_id", ""),
        "token": run.get("token", ""), "recheck": bool(run.get("recheck", False)), "worker": worker,
        "checked_at": outcome.started_at.isoformat(), "success": outcome.success,
        "status_code": outcome.status_code, "response_time_ms": outcome.response_time_ms, "error": outcome.error,
        "phases": {phase: round(seconds * 1000, 3) for phase, seconds in outcome.phases.items()},
        "tls": tls_facts_json(outcome.tls) if outcome.tls else None,
        "tls_not_after": outcome.tls.not_after.isoformat() if outcome.tls else None,
        "tls_fingerprint": tls_fingerprint(outcome.tls) if outcome.tls else "",
        "failed_condition": outcome.failed_condition or "",
    }
