"""The rules every monitor obeys, however it is created or changed (API, shell, monitors kept as code).

`spec_validate` collects every broken rule into one ValidationFailed (field -> messages) and returns the spec
as it is stored (normalized crontab, checked url). The API's serializer declares the same bounds from the
constants here, so the schema tells them, but these checks are the ones that count.
"""

import re
from collections.abc import Callable, Mapping
from dataclasses import replace
from functools import partial
from typing import Any

from django.conf import settings

from lookout.core.crontab import crontab_fields, timezone_validate
from lookout.core.errors import ValidationFailed
from lookout.core.target_policy import target_url_check
from lookout.monitors.models import HttpMethod, MetricsDetail, Monitor, MonitorType, RecordType
from lookout.monitors.spec import MonitorSpec
from lookout.probes.engine.conditions import ConditionError, conditions_validate

MAX_TIMEOUT = 300.0
MIN_TIMEOUT = 0.1
DEFAULT_TIMEOUT = 10.0
MAX_INTERVAL = 7 * 24 * 3600
# The shortest gap a 5-field crontab can have: a cron monitor's timeout cap.
CRON_MIN_PERIOD = 60
# What a user may ask of a probe (the engine's defaults are lower: lookout.probes.engine.spec).
MAX_BODY_BYTES_ALLOWED = 10 * 1024 * 1024
MAX_REDIRECTS_ALLOWED = 10
MAX_HEADERS = 50
MAX_CONDITIONS = 20
MAX_EXPECTED_STATUSES = 50
# Field -> longest text accepted (characters).
MAX_LENGTHS = {
    "name": 200, "url": 2048, "body": 65536, "cron": 120, "timezone": 64, "keyword": 1024,
    "basic_auth_username": 256, "basic_auth_password": 1024, "send": 4096, "expect": 4096, "expected_answer": 512,
    "header_value": 8192, "condition": 500,
}
# (lowest, highest) timeout accepted, in seconds.
TIMEOUT_BOUNDS = (MIN_TIMEOUT, MAX_TIMEOUT)
# Field -> (lowest, highest) whole number accepted; interval's lowest is the installation's LOOKOUT_MIN_INTERVAL.
BOUNDS: dict[str, tuple[int, int]] = {
    "max_redirects": (0, MAX_REDIRECTS_ALLOWED),
    "max_body_bytes": (1, MAX_BODY_BYTES_ALLOWED), "tls_expiry_days": (0, 365), "grace": (0, MAX_INTERVAL),
    "failure_threshold": (1, 100), "recovery_threshold": (1, 100),
}
STATUS_CODE_BOUNDS = (100, 599)
# RFC 9110 token characters: anything else cannot be sent as a header name.
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


def timeout_cap(*, interval: int | None) -> float:
    """A probe never runs longer than its interval (60 s for crontab monitors), nor than MAX_TIMEOUT."""
    return float(min(interval or CRON_MIN_PERIOD, MAX_TIMEOUT))


def default_timeout(*, interval: int | None) -> float:
    return min(DEFAULT_TIMEOUT, timeout_cap(interval=interval))


def interval_bounds() -> tuple[int, int]:
    return settings.LOOKOUT_MIN_INTERVAL, MAX_INTERVAL


class _Errors:
    def __init__(self) -> None:
        self.by_field: dict[str, list[str]] = {}

    def add(self, name: str, message: str) -> None:
        self.by_field.setdefault(name, []).append(message)

    def check(self, name: str, rule: Callable[[], object]) -> None:
        """Run a rule that raises ValueError with its message."""
        try:
            rule()
        except ValueError as exc:
            self.add(name, str(exc))


def _text(value: Any, *, name: str, limit: int) -> None:
    if not isinstance(value, str):
        raise ValueError("Not a valid string.")
    if len(value) > limit:
        raise ValueError(f"Ensure this field has no more than {limit} characters.")


def _number(value: Any, *, low: float, high: float, integer: bool = True) -> None:
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise ValueError("A valid integer is required." if integer else "A valid number is required.")
    if not low <= value <= high:
        raise ValueError(f"Must be between {low:g} and {high:g}.")


def _choice(value: Any, choices: list[str] | tuple[Any, ...]) -> None:
    if value not in choices:
        raise ValueError(f'"{value}" is not a valid choice.')


def _headers(value: Mapping[str, str] | None) -> None:
    if value is None:
        return
    if not isinstance(value, Mapping):
        raise ValueError("Expected a dictionary of header names and values.")
    if len(value) > MAX_HEADERS:
        raise ValueError(f"At most {MAX_HEADERS} headers.")
    for name, header_value in value.items():
        if not isinstance(name, str) or not _HEADER_NAME.match(name) or len(name) > 256:
            raise ValueError(f"{name!r} is not a valid header name.")
        _text(header_value, name=name, limit=MAX_LENGTHS["header_value"])
        if "\r" in header_value or "\n" in header_value:
            raise ValueError(f"The value of {name!r} contains a line break.")


def _expected_status(value: list[int] | None) -> None:
    if value is None:
        return
    if not isinstance(value, list | tuple) or not value:
        raise ValueError("A non-empty list of status codes, or null for any 2xx or 3xx.")
    if len(value) > MAX_EXPECTED_STATUSES:
        raise ValueError(f"At most {MAX_EXPECTED_STATUSES} status codes.")
    for code in value:
        _number(code, low=STATUS_CODE_BOUNDS[0], high=STATUS_CODE_BOUNDS[1])


def _conditions(value: list[str]) -> None:
    if not isinstance(value, list | tuple) or len(value) > MAX_CONDITIONS:
        raise ValueError(f"A list of at most {MAX_CONDITIONS} conditions.")
    for text in value:
        _text(text, name="condition", limit=MAX_LENGTHS["condition"])
    try:
        conditions_validate(list(value))
    except ConditionError as exc:
        raise ValueError(str(exc)) from exc


def monitor_regions(monitor: Monitor | MonitorSpec) -> list[str]:
    """The regions a monitor is probed from: those it names, or the home region."""
    return list(monitor.regions) or [settings.LOOKOUT_HOME_REGION]


def confirm_needed(*, regions: int, confirm: int | None) -> int:
    """How many regions must fail a round: the monitor's `confirm`, or a majority (1 for a single region)."""
    return confirm if confirm is not None else regions // 2 + 1


def _names(value: Any, *, allowed: list[str], what: str, where: str) -> None:
    """A list of distinct names, each one of `allowed` (`what`: e.g. "region"; `where`: where they come from)."""
    if not isinstance(value, list | tuple) or not all(isinstance(name, str) for name in value):
        raise ValueError(f"A list of {what} names.")
    unknown = [name for name in value if name not in allowed]
    if unknown:
        raise ValueError(f"Unknown {what} {', '.join(map(repr, unknown))}: {where} {', '.join(allowed)}.")
    if len(set(value)) != len(value):
        raise ValueError(f"A {what} is named twice.")


def _confirm(value: Any, *, regions: list[str]) -> None:
    if value is None:
        return
    _number(value, low=1, high=max(len(regions), 1))


def _url(monitor_type: str, url: str) -> str:
    """The url to store for this type; a probed type's target must also pass the safe-target rules."""
    if monitor_type == MonitorType.PUSH:
        if url:
            raise ValueError("Push monitors have no url: the target calls their push_url.")
        return ""
    target_url_check(monitor_type, url)
    return url


def spec_validate(spec: MonitorSpec, *, current: Monitor | None = None) -> MonitorSpec:
    """The spec as stored, or ValidationFailed naming every field that breaks a rule.

    `current` is the monitor being changed: its type cannot change, and its url is only checked again when it
    changes (a target allowed when saved stays allowed; the probe-time check still guards it).
    """
    errors = _Errors()
    for name, limit in MAX_LENGTHS.items():
        value = getattr(spec, name, None)
        if value is not None and name not in ("url",):
            errors.check(name, partial(_text, value, name=name, limit=limit))
    if not spec.name:
        errors.add("name", "This field may not be blank.")
    errors.check("type", lambda: _choice(spec.type, MonitorType.values))
    if current is not None and spec.type != current.type:
        errors.add("type", "The type of a monitor cannot change; create a new one.")
    errors.check("method", lambda: _choice(spec.method, HttpMethod.values))
    errors.check("record_type", lambda: _choice(spec.record_type, RecordType.values))
    errors.check("ip_version", lambda: _choice(spec.ip_version, (None, 4, 6)))
    for name, (low, high) in {"timeout": TIMEOUT_BOUNDS, **BOUNDS}.items():
        value = getattr(spec, name)
        if value is not None:
            errors.check(name, partial(_number, value, low=low, high=high, integer=name != "timeout"))
    errors.check("expected_status", lambda: _expected_status(spec.expected_status))
    errors.check("headers", lambda: _headers(spec.headers))
    errors.check("secret_headers", lambda: _headers(spec.secret_headers))
    errors.check("conditions", lambda: _conditions(spec.conditions))
    errors.check("timezone", lambda: timezone_validate(spec.timezone))
    errors.check("regions", lambda: _names(spec.regions, allowed=list(settings.LOOKOUT_REGIONS), what="region",
                                           where="the regions (LOOKOUT_REGIONS) are"))
    errors.check("metrics", lambda: _names(spec.metrics, allowed=list(MetricsDetail.values), what="metric detail",
                                           where="the details are"))
    if "regions" not in errors.by_field:
        errors.check("confirm", lambda: _confirm(spec.confirm, regions=monitor_regions(spec)))

    cron = spec.cron
    if cron is not None and "cron" not in errors.by_field:
        errors.check("cron", partial(crontab_fields, cron))
        cron = " ".join(cron.split())
    if spec.interval is not None:
        low, high = interval_bounds()
        if isinstance(spec.interval, bool) or not isinstance(spec.interval, int) or not low <= spec.interval <= high:
            errors.add("interval", f"Must be between {low} and {high} seconds (7 days).")
    if (spec.interval is None) == (cron is None):
        errors.add("interval", "Set exactly one of `interval` (seconds) or `cron`; send null for the other.")
    elif spec.type == MonitorType.PUSH and cron is not None:
        errors.add("cron", "Push monitors expect a heartbeat every `interval`.")
    cap = timeout_cap(interval=spec.interval)
    if spec.timeout is not None and "timeout" not in errors.by_field and spec.timeout > cap:
        errors.add("timeout", f"Must not exceed {cap:g} seconds (the interval; 60 for crontab monitors).")

    url = spec.url
    if "type" not in errors.by_field and (current is None or spec.url != current.url):
        errors.check("url", lambda: _text(spec.url, name="url", limit=MAX_LENGTHS["url"]))
        if "url" not in errors.by_field:
            try:
                url = _url(spec.type, spec.url)
            except ValueError as exc:
                errors.add("url", str(exc))
    if errors.by_field:
        raise ValidationFailed(errors.by_field)
    return replace(spec, url=url, cron=cron, keyword=spec.keyword or None)
