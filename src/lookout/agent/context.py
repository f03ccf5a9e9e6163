"""Which region this process probes for, with which key and target policy: set once per process.

The agent's app sets it from the environment (lookout.agent.app); a Django worker of a region (`lookout worker
--region NAME`) sets it from the home side's settings and key, at worker_init, before any run arrives.
"""

from dataclasses import dataclass

from lookout.probes.engine import TargetPolicy, region_user_agent


@dataclass(frozen=True)
class RegionContext:
    region: str
    key: str  # the region's Fernet key (lookout.agent.keys)
    policy: TargetPolicy
    user_agent: str


_current: RegionContext | None = None


def configure(*, region: str, key: str, policy: TargetPolicy) -> RegionContext:
    global _current
    _current = RegionContext(region=region, key=key, policy=policy, user_agent=region_user_agent(region))
    return _current


def configured() -> RegionContext | None:
    return _current


def current() -> RegionContext:
    if _current is None:
        raise RuntimeError("no region configured in this process: lookout.agent.context.configure() must run "
                           "before a region's run is probed (lookout agent does it; a Django worker at worker_init)")
    return _current
