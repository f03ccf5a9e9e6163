"""The probe types, listed once. Each is one module with the same names:

- TYPE: the monitor type it serves; SCHEMES: the URL schemes of its targets;
- SPEC_FIELDS: the ProbeSpec fields it reads, besides those of every type (url, timeout, conditions, policy);
- url_rule(url): raise ValueError with a message for the user unless url is one of its targets;
- target_hosts(url): the hosts a save-time safety check must look at, with what they are;
- probe(spec, run) -> Observation.

Everything else derives from this list: the monitor's type choices, the API's URL rules, which monitor fields
a worker reads, the metric label sets. A new type is a new module added here, plus the migration of the
monitor's type choices (and of any option it adds).
"""

from __future__ import annotations

from typing import Protocol

from lookout.probes.engine import dns_probe, http_probe, tcp_probe
from lookout.probes.engine.run import Observation, ProbeRun
from lookout.probes.engine.spec import ProbeSpec


class ProbeType(Protocol):
    """The names every probe type's module provides (above): the type checker holds each module to them."""

    TYPE: str
    SCHEMES: tuple[str, ...]
    SPEC_FIELDS: tuple[str, ...]

    def url_rule(self, url: str) -> None: ...

    def target_hosts(self, url: str) -> list[tuple[str, str]]: ...

    def probe(self, spec: ProbeSpec, run: ProbeRun) -> Observation: ...


TYPE_MODULES: dict[str, ProbeType] = {module.TYPE: module for module in (http_probe, tcp_probe, dns_probe)}
PROBE_TYPES: tuple[str, ...] = tuple(TYPE_MODULES)
TYPE_BY_SCHEME: dict[str, ProbeType] = {scheme: module for module in TYPE_MODULES.values()
                                         for scheme in module.SCHEMES}
# ProbeSpec fields every type reads.
COMMON_SPEC_FIELDS = ("url", "type", "timeout", "conditions", "policy")


def spec_fields(probe_type: str) -> tuple[str, ...]:
    """The ProbeSpec fields a probe of this type reads (unknown types: the common ones)."""
    module = TYPE_MODULES.get(probe_type)
    return COMMON_SPEC_FIELDS + (module.SPEC_FIELDS if module else ())


def url_validate(probe_type: str, url: str) -> None:
    """Raise ValueError, with a message for the user, unless url is a target of this probe type."""
    module = TYPE_MODULES.get(probe_type)
    if module is None:
        raise ValueError(f"Unknown probe type {probe_type!r} (one of {', '.join(PROBE_TYPES)}).")
    module.url_rule(url)
