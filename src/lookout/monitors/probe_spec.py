"""What a monitor's probe needs, wherever it runs: the engine's ProbeSpec for the home region's workers (which read
the monitor), and for other regions the public part and the secrets sealed to each region's key, stored in the
monitor's PeriodicTask so beat can send them (lookout.scheduling.regional)."""

from collections.abc import Callable
from typing import Any

from django.conf import settings

from lookout.agent.keys import secrets_seal
from lookout.agent.runs import spec_json
from lookout.core.encryption import secret_decrypt, secret_headers_decrypt
from lookout.core.regions import region_key, secrets_digest
from lookout.core.target_policy import target_policy
from lookout.monitors.models import Monitor
from lookout.monitors.rules import monitor_regions
from lookout.probes.engine import PROBE_TYPES, ProbeSpec, region_user_agent, spec_fields
from lookout.scheduling import schedules

# ProbeSpec fields whose value is not the monitor's field of the same name. Every other field a type lists
# (lookout.probes.engine.types) is copied from the monitor as it is.
_SPEC_VALUES: dict[str, Callable[[Monitor], Any]] = {
    "body": lambda monitor: monitor.body.encode() or None,
    "headers": lambda monitor: {**(monitor.headers or {}), **secret_headers_decrypt(monitor.secret_headers)},
    "basic_auth": lambda monitor: ((monitor.basic_auth_username, secret_decrypt(monitor.basic_auth_password))
                                   if monitor.basic_auth_username else None),
    "expected_status": lambda monitor: tuple(monitor.expected_status) if monitor.expected_status else None,
    "keyword": lambda monitor: monitor.keyword or None,
    "conditions": lambda monitor: tuple(monitor.conditions or ()),
    "send": lambda monitor: monitor.send.encode() or None,
    "expect": lambda monitor: monitor.expect.encode() or None,
    "expected_answer": lambda monitor: monitor.expected_answer or None,
    "ca_pem": lambda monitor: None,  # not a monitor option: the default trust store
    "policy": lambda monitor: target_policy(),
}
# The monitor fields _SPEC_VALUES reads where they differ from the spec field's name.
_SPEC_SOURCES = {"headers": ("headers", "secret_headers"), "basic_auth": ("basic_auth_username",
                                                                           "basic_auth_password"),
                 "ca_pem": (), "policy": ()}
# The monitor fields a worker reads (smaller rows, fewer packets): enabled, and what any type's spec needs.
PROBE_FIELDS = tuple(dict.fromkeys(["enabled", *(source for probe_type in PROBE_TYPES
                                                 for name in spec_fields(probe_type)
                                                 for source in _SPEC_SOURCES.get(name, (name,)))]))
# Read by the engine from the spec but never sent to another region as they are: secrets travel sealed, and a
# region applies its own safe-target policy.
_SEALED = {"headers", "basic_auth", "policy"}


def _spec_values(monitor: Monitor, *, skip: set[str]) -> dict[str, Any]:
    return {name: _SPEC_VALUES[name](monitor) if name in _SPEC_VALUES else getattr(monitor, name)
            for name in spec_fields(monitor.type) if name not in skip}


def probe_spec(monitor: Monitor) -> ProbeSpec:
    """What to probe: the fields the monitor's type reads; the others keep the engine's defaults. With several
    regions configured, the home region's probes name it in their User-Agent as every other region's do."""
    return ProbeSpec(**_spec_values(monitor, skip=set()),
                     user_agent=region_user_agent(settings.LOOKOUT_HOME_REGION)
                     if len(settings.LOOKOUT_REGIONS) > 1 else None)


def regional_payload(monitor: Monitor, *, current: dict[str, Any] | None) -> dict[str, Any] | None:
    """For a monitor probed from any region but the home one alone, what its PeriodicTask carries for beat
    (lookout.scheduling.regional): its regions, the probe's public fields and its secrets sealed to each other
    region's key. None for the home region alone. `current` (the payload stored now) is returned as it is when
    nothing changed: sealing is randomized, and a rewritten row would reach beat as a change."""
    regions = monitor_regions(monitor)
    others = [region for region in regions if region != settings.LOOKOUT_HOME_REGION]
    if not others:
        return None
    public = ProbeSpec(**_spec_values(monitor, skip=_SEALED), headers=dict(monitor.headers or {}))
    secret_headers = secret_headers_decrypt(monitor.secret_headers)
    password = secret_decrypt(monitor.basic_auth_password)
    basic_auth = (monitor.basic_auth_username, password) if monitor.basic_auth_username else None
    digest = secrets_digest(monitor_id=monitor.pk, secrets=[secret_headers, basic_auth])
    spec = spec_json(public)
    if current and current.get("regions") == regions and current.get("spec") == spec and \
            current.get("secrets") == digest:
        return current
    sealed = {region: secrets_seal(region_key(region), headers=secret_headers, basic_auth=basic_auth)
              for region in others}
    payload = schedules.regional_payload(monitor_id=monitor.pk, regions=regions, spec=spec,
                                         sealed={region: token for region, token in sealed.items() if token})
    return {**payload, "secrets": digest}  # which secrets were sealed (a MAC, not the secrets): resealed on a change
