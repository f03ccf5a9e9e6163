"""What the home region knows of every region: its queue, its key, and the tokens that make a run's result
acceptable only from the region it was sent to.

A region's key is derived from this installation's encryption material (LOOKOUT_ENCRYPTION_KEY, or SECRET_KEY),
so the home side needs no key list: `lookout manage regionkey NAME` prints the one an agent of NAME is given.
A run's token is a MAC under a key no agent holds: an agent can echo it back, never make one for a run it was not
sent (another monitor, another region, another run).
"""

import hashlib
import hmac
import json

from django.conf import settings

from lookout.agent.keys import region_key_derive


def _material() -> str:
    keys: list[str] = settings.LOOKOUT_ENCRYPTION_KEYS
    return keys[0] if keys else settings.SECRET_KEY


def region_queue(region: str) -> str:
    """The queue a region's workers and agents consume: the home region keeps the `probes` queue it always had."""
    return settings.LOOKOUT_PROBE_QUEUE if region == settings.LOOKOUT_HOME_REGION else f"probes.{region}"


def region_key(region: str) -> str:
    return region_key_derive(_material(), region)


def _token_key() -> bytes:
    return hashlib.sha256(b"lookout-run-token:" + _material().encode()).digest()


def run_token(*, monitor_id: int, region: str, task_id: str, due: float | None = None) -> str:
    """The MAC of one run sent to one region (its due time too: a result cannot claim another round)."""
    message = f"{monitor_id}|{region}|{task_id}|{'' if due is None else repr(float(due))}"
    return hmac.new(_token_key(), message.encode(), hashlib.sha256).hexdigest()


def run_token_valid(*, monitor_id: int, region: str, task_id: str, due: float | None, token: str) -> bool:
    return hmac.compare_digest(run_token(monitor_id=monitor_id, region=region, task_id=task_id, due=due), token)


def secrets_digest(*, monitor_id: int, secrets: object) -> str:
    """A MAC of a monitor's secrets (JSON-ready): tells whether they changed without keeping them in the clear."""
    message = f"secrets|{monitor_id}|{json.dumps(secrets, sort_keys=True)}"
    return hmac.new(_token_key(), message.encode(), hashlib.sha256).hexdigest()
