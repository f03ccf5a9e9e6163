"""What a monitor's `url` may be, per type, and whether it is a safe target (checked when it is saved)."""

from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator

from lookout.monitors.models import MonitorType
from lookout.probes.engine import UnsafeTarget, target_check
from lookout.probes.policy import target_policy

# API bounds for probe options (the engine's defaults are 1 MiB and 5 hops).
MAX_BODY_BYTES = 10 * 1024 * 1024
MAX_REDIRECTS = 10

_http_url = URLValidator(schemes=["http", "https"])


def _tcp_url(url: str) -> None:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"Invalid port in {url!r}.") from exc
    if parts.scheme != "tcp" or not parts.hostname or port is None or parts.path not in ("", "/"):
        raise ValueError("A tcp monitor's url is tcp://HOST:PORT.")


def _dns_url(url: str) -> None:
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if parts.scheme != "dns" or not name or "/" in name or len(name) > 253:
        raise ValueError("A dns monitor's url is dns://RESOLVER/NAME, or dns:///NAME for the system resolver.")
    try:
        parts.port  # noqa: B018 (raises on a malformed port)
    except ValueError as exc:
        raise ValueError(f"Invalid resolver port in {url!r}.") from exc


def target_url_validate(monitor_type: str, url: str) -> str:
    """Return the url to store, or raise ValueError with a message for the API client."""
    if monitor_type == MonitorType.PUSH:
        if url:
            raise ValueError("Push monitors have no url: the target calls their push_url.")
        return ""
    if not url:
        raise ValueError("This field is required.")
    if monitor_type == MonitorType.HTTP:
        try:
            _http_url(url)
        except ValidationError as exc:
            raise ValueError("Enter a valid http:// or https:// URL.") from exc
    elif monitor_type == MonitorType.TCP:
        _tcp_url(url)
    elif monitor_type == MonitorType.DNS:
        _dns_url(url)
    try:
        target_check(url, target_policy())
    except UnsafeTarget as exc:
        raise ValueError(str(exc)) from exc
    return url
