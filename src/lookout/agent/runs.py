"""(placeholder until the agent package lands)"""
from dataclasses import fields
from typing import Any

from lookout.probes.engine import ProbeSpec

_SKIP = {"policy", "basic_auth", "ca_pem"}


def spec_json(spec: ProbeSpec) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields(spec):
        if f.name in _SKIP:
            continue
        value = getattr(spec, f.name)
        if isinstance(value, bytes):
            value = value.decode()
        elif isinstance(value, tuple):
            value = list(value)
        elif f.name == "headers":
            value = dict(value)
        out[f.name] = value
    return out
