"""The agent's configuration, from the environment only (no Django settings, no database)."""

from dataclasses import dataclass

from lookout.agent.keys import SecretsRefused, secrets_open, secrets_seal
from lookout.environment import (
    REGION_NAME,
    EnvironmentInvalid,
    env_bool,
    env_cidrs,
    env_int,
    env_required,
    env_str,
)
from lookout.observability.logging import LOG_FORMATS
from lookout.probes.engine import TargetPolicy

DEFAULT_METRICS_PORT = 9542  # worker 9540, beat 9541


@dataclass(frozen=True)
class AgentSettings:
    broker_url: str
    region: str
    key: str
    policy: TargetPolicy
    metrics_port: int
    metrics_host: str
    log_format: str
    log_level: str


def region_name_check(name: str, variable: str = "LOOKOUT_REGION") -> str:
    if not REGION_NAME.match(name):
        raise EnvironmentInvalid(f"{variable}={name!r} is not a region name (a-z, 0-9 and '-', starting with a "
                                 "letter, at most 32 characters)")
    return name


def agent_settings() -> AgentSettings:
    """Read and check every variable now, so a bad one is one line at start, not a failure at the first run."""
    broker_url = env_required("CELERY_BROKER_URL", "the agent needs the broker URL of the home installation")
    region = region_name_check(env_required("LOOKOUT_REGION", "the region this agent probes (or --region)"))
    key = env_required("LOOKOUT_REGION_KEY", "the region's key: `lookout manage regionkey NAME` prints it at home")
    try:
        secrets_open(key, secrets_seal(key, {"check": "key"}, None))
    except SecretsRefused as exc:
        raise EnvironmentInvalid(f"LOOKOUT_REGION_KEY: {exc}") from None
    return AgentSettings(
        broker_url=broker_url, region=region, key=key,
        policy=TargetPolicy(allow_private=env_bool("LOOKOUT_ALLOW_PRIVATE_TARGETS", False),
                            allowlist=env_cidrs("LOOKOUT_TARGET_ALLOWLIST")),
        metrics_port=env_int("LOOKOUT_METRICS_PORT", DEFAULT_METRICS_PORT, minimum=0),
        # Every interface by default, as a container needs for its kubelet probes (as the worker's).
        metrics_host=env_str("LOOKOUT_METRICS_HOST") or "0.0.0.0",
        log_format=_log_format(), log_level=env_str("LOOKOUT_LOG_LEVEL") or "INFO",
    )


def _log_format() -> str:
    log_format = (env_str("LOOKOUT_LOG_FORMAT") or "text").lower()
    if log_format not in LOG_FORMATS:
        raise EnvironmentInvalid(f"LOOKOUT_LOG_FORMAT={log_format!r} must be 'text' or 'json'")
    return log_format
