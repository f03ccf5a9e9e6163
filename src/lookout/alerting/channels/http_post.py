"""POSTing to webhook and Slack URLs with the probe engine, so they obey the same safe-target rules as monitors.

The URL was checked when the channel was saved (lookout.core.target_policy.target_url_check). At send time the
name is resolved once, by the engine, which checks that address against the installation's policy and connects
to that very address (Host, SNI and certificate name stay the URL's): a name re-pointed at an internal address
since it was saved (DNS rebinding) is refused before any packet reaches it. There is no lookup of our own
before the engine's: a rebinding name server could answer that one with a public address and the engine's
with an internal one, and the address checked would not be the one dialled. Redirects are not followed: a
receiver answering one is misconfigured. Every channel that dials a user's address goes through here.
"""

from collections.abc import Mapping

from django.conf import settings

from lookout.alerting.channels.base import TransportError
from lookout.core.target_policy import target_policy
from lookout.probes.engine import ProbeSpec, UnsafeTarget, probe, target_check

_SUCCESS = tuple(range(200, 300))
# 4xx answers that mean "later", not "never".
_TRANSIENT_CLIENT_ERRORS = {408, 425, 429}


def http_post(url: str, *, body: bytes, headers: Mapping[str, str]) -> int:
    """POST the body; return the 2xx status, or raise TransportError (permanent for 3xx/4xx and refused targets)."""
    policy = target_policy()
    try:
        # A malformed URL or a refused IP literal fails here without a lookup; names are checked as dialled.
        target_check(url, policy, resolve=False)
    except UnsafeTarget as exc:
        raise TransportError(str(exc), permanent=True) from exc
    outcome = probe(ProbeSpec(
        url=url, type="http", method="POST", body=body, headers=dict(headers), follow_redirects=False,
        expected_status=_SUCCESS, timeout=float(settings.LOOKOUT_ALERT_TIMEOUT_SECONDS), max_body_bytes=16 * 1024,
        policy=policy,
    ))
    if outcome.refused:  # the name resolves to an address the policy refuses: it will until someone changes it
        raise TransportError(outcome.error, permanent=True)
    status = outcome.status_code
    if status is not None and 200 <= status < 300 and outcome.success:
        return status
    if status is None:  # timeouts, refused or reset connections, DNS failures: the receiver may come back
        raise TransportError(outcome.error or "no response", permanent=False)
    permanent = 300 <= status < 500 and status not in _TRANSIENT_CLIENT_ERRORS
    raise TransportError(f"HTTP {status} from the receiver", permanent=permanent, status_code=status)
