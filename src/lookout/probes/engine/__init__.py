"""The probe engine: one probe, one verdict.

Plain Python on purpose (no Django): workers call it from gevent greenlets and tests call it directly.
``probe`` never raises for anything that can go wrong on the wire, so a bad target can only ever produce
a failed ``Outcome``, within ``spec.timeout`` (one total deadline for everything the probe does).

One module per probe type (http_probe, tcp_probe, dns_probe), listed once in lookout.probes.engine.types,
which says what each module provides.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from lookout.probes.engine.conditions import ConditionContext, ConditionError, condition_failure
from lookout.probes.engine.resolve import host_check, nameservers_set
from lookout.probes.engine.run import Observation, ProbeRun
from lookout.probes.engine.spec import (
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_REDIRECTS,
    PHASES,
    RECORD_TYPES,
    USER_AGENT,
    Outcome,
    ProbeSpec,
    TlsFacts,
    region_user_agent,
)
from lookout.probes.engine.targets import TargetPolicy, UnsafeTarget, address_refusal
from lookout.probes.engine.tls import tls_facts_json, tls_fingerprint
from lookout.probes.engine.types import PROBE_TYPES, TYPE_BY_SCHEME, TYPE_MODULES, spec_fields, url_validate

if TYPE_CHECKING:
    from gevent import Timeout

__all__ = [
    "DEFAULT_MAX_BODY_BYTES", "DEFAULT_MAX_REDIRECTS", "PHASES", "PROBE_TYPES", "RECORD_TYPES", "USER_AGENT",
    "Outcome", "ProbeSpec", "TargetPolicy", "TlsFacts", "UnsafeTarget",
    "address_refusal", "nameservers_set", "probe", "region_user_agent", "spec_fields", "target_check",
    "tls_facts_json", "tls_fingerprint", "url_validate",
]

logger = logging.getLogger(__name__)

_MAX_ERROR_CHARS = 500
# Under gevent a greenlet-level timeout backs up the per-operation deadlines, in case some library loop
# re-arms a full socket timeout at each wait; it should never be what ends a probe.
_BACKSTOP_GRACE_SECONDS = 0.25


def probe(spec: ProbeSpec) -> Outcome:
    started_at = datetime.now(UTC)
    run = ProbeRun.start(spec)
    backstop = _backstop(spec.timeout)
    try:
        observation = _observe(spec, run)
    except BaseException as exc:
        if backstop is None or exc is not backstop:
            raise
        observation = Observation(error=run.timeout_text())
    finally:
        if backstop is not None:
            backstop.close()
    total = run.clock.stop()
    failed_condition = None
    if not observation.error and spec.conditions:
        failed_condition, observation.error = _conditions_check(spec, run, observation, total)
    return Outcome(
        success=not observation.error,
        status_code=observation.status_code,
        response_time_ms=total * 1000,
        error=_clip(observation.error),
        started_at=started_at,
        phases=dict(run.clock.seconds),
        tls=run.tls,
        failed_condition=failed_condition,
        answer=observation.answer,
        refused=observation.refused,
    )


def target_check(url: str, policy: TargetPolicy, *, resolve: bool = True) -> None:
    """Save-time safety check of a monitor's url (any type); raises UnsafeTarget with a message for the API.

    IP literals are checked as they are; host names by every address they resolve to now (``resolve``),
    and again at every probe. A name that does not resolve now is accepted. The system resolver of
    dns:///NAME is the operator's and is not checked.
    """
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError as exc:
        raise UnsafeTarget(f"invalid URL {url!r}: {exc}") from exc
    module = TYPE_BY_SCHEME.get(scheme)
    if module is None:
        raise UnsafeTarget(f"unsupported URL scheme {scheme!r} in {url!r}")
    for host, what in module.target_hosts(url):
        host_check(host, policy, resolve=resolve, what=what)


def _observe(spec: ProbeSpec, run: ProbeRun) -> Observation:
    module = TYPE_MODULES.get(spec.type)
    if module is None:
        return Observation(error=f"unsupported probe type {spec.type!r} (one of {', '.join(PROBE_TYPES)})")
    try:
        return module.probe(spec, run)
    except Exception as exc:  # a bug, not the target's doing; still a recorded failure, never a dead worker
        logger.exception("probe of %s failed unexpectedly", spec.type)
        return Observation(error=f"unexpected error: {type(exc).__name__}: {exc}")


def _conditions_check(spec: ProbeSpec, run: ProbeRun, observation: Observation,
                      total: float) -> tuple[str | None, str]:
    context = ConditionContext(
        status=observation.status_code, response_time_ms=total * 1000, body=observation.body,
        headers=observation.headers,
        certificate_expiration=(run.tls.not_after - datetime.now(UTC)).total_seconds() if run.tls else None,
    )
    for text in spec.conditions:
        try:
            failure = condition_failure(text, context)
        except ConditionError as exc:  # validated when saved; only a spec built elsewhere gets here
            return text, f"invalid condition {text!r}: {exc}"
        if failure is not None:
            return text, f"condition failed: {failure}"
    return None, ""


def _backstop(seconds: float) -> Timeout | None:
    monkey = sys.modules.get("gevent.monkey")
    if monkey is None or not monkey.is_module_patched("socket"):
        return None
    import gevent

    timer = gevent.Timeout(max(seconds, 0) + _BACKSTOP_GRACE_SECONDS)
    timer.start()
    return timer


def _clip(error: str) -> str:
    error = " ".join(error.split())  # one line, whatever the exception text contained
    if len(error) <= _MAX_ERROR_CHARS:
        return error
    return error[: _MAX_ERROR_CHARS - 3] + "..."
