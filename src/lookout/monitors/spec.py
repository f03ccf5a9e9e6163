"""MonitorSpec: everything a user decides about a monitor, as the services take it (from the API, a shell,
or monitors kept as code). The services validate it (lookout.monitors.rules) before anything is written."""

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from django.db.models import Field

from lookout.monitors.models import Monitor


def _model_default(name: str) -> Any:
    """The model's default, so a spec and a row created without the field agree."""
    def default() -> Any:
        model_field = Monitor._meta.get_field(name)
        if not isinstance(model_field, Field):  # get_field also finds relations, which have no default
            raise TypeError(f"Monitor.{name} is not a field with a default")
        return model_field.get_default()

    return field(default_factory=default)


@dataclass(frozen=True, kw_only=True)
class MonitorSpec:
    name: str
    type: str = _model_default("type")
    url: str = ""  # http(s)://…, tcp://host:port, dns://RESOLVER/NAME or dns:///NAME; empty for push monitors
    interval: int | None = None  # seconds; exactly one of interval and cron
    cron: str | None = None
    timezone: str = _model_default("timezone")
    # None: 10 s for a new monitor, capped at the interval; on a change, the current one, capped at the new interval.
    timeout: float | None = None
    method: str = _model_default("method")
    body: str = ""
    expected_status: list[int] | None = None  # None: any 2xx or 3xx
    keyword: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    # Write-only values, stored encrypted. None: unchanged (a new monitor has none).
    secret_headers: Mapping[str, str] | None = None
    basic_auth_username: str = ""
    basic_auth_password: str | None = None
    follow_redirects: bool = _model_default("follow_redirects")
    max_redirects: int = _model_default("max_redirects")
    max_body_bytes: int = _model_default("max_body_bytes")
    ip_version: int | None = None
    verify_tls: bool = _model_default("verify_tls")
    tls_expiry_days: int = _model_default("tls_expiry_days")
    conditions: list[str] = field(default_factory=list)
    send: str = ""
    expect: str = ""
    record_type: str = _model_default("record_type")
    expected_answer: str = ""
    grace: int = _model_default("grace")
    failure_threshold: int = _model_default("failure_threshold")
    recovery_threshold: int = _model_default("recovery_threshold")
    # Names of LOOKOUT_REGIONS to probe from (stored as given; empty: the home region), and how many of them must
    # fail a round before the monitor is down (None: a majority).
    regions: list[str] = field(default_factory=list)
    confirm: int | None = None
    # Opt-in per-monitor series (MetricsDetail values: status, phases, incidents, regions); empty: the default ones.
    metrics: list[str] = field(default_factory=list)
    # Ids of the owner's channels to alert besides the defaults. None: unchanged (a new monitor names none).
    channels: list[int] | None = None


SPEC_FIELDS: tuple[str, ...] = tuple(spec_field.name for spec_field in fields(MonitorSpec))
# Kept by the services rather than copied from the row: encrypted values, the many-to-many, the derived timeout.
_NOT_COPIED = {"secret_headers", "basic_auth_password", "channels", "timeout"}


def monitor_spec(monitor: Monitor) -> MonitorSpec:
    """The monitor's spec as it stands: change it with dataclasses.replace and pass it to monitor_update."""
    return MonitorSpec(**{name: getattr(monitor, name) for name in SPEC_FIELDS if name not in _NOT_COPIED})
