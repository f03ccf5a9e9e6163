"""Read configuration from the environment (12-factor).

Every secret may also come from ``NAME_FILE`` (a path), so Kubernetes secrets can be mounted as files.

No Django here: the Django settings (through lookout.config.env) and the database-less region agent
(lookout.agent) read their variables with the same rules and the same messages.
"""

import ipaddress
import os
import re
import ssl
from urllib.parse import urlsplit


class EnvironmentInvalid(ValueError):
    """A variable is missing or malformed; the message names it."""

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str | None = None) -> str | None:
    file_path = os.environ.get(f"{name}_FILE")
    if file_path:
        try:
            with open(file_path, encoding="utf-8") as f:
                return f.read().strip()
        except OSError as exc:
            raise EnvironmentInvalid(f"{name}_FILE={file_path} cannot be read: {exc}") from exc
    return os.environ.get(name, default)


def env_required(name: str, hint: str) -> str:
    value = env_str(name)
    if not value:
        raise EnvironmentInvalid(f"{name} is not set: {hint}")
    return value


def env_bool(name: str, default: bool = False) -> bool:
    value = env_str(name)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise EnvironmentInvalid(f"{name}={value!r} is not a boolean (use 1/0, true/false, yes/no, on/off)")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    value = env_str(name)
    if value is None or value.strip() == "":
        return default
    try:
        number = int(value)
    except ValueError as exc:
        raise EnvironmentInvalid(f"{name}={value!r} is not an integer") from exc
    if minimum is not None and number < minimum:
        raise EnvironmentInvalid(f"{name}={number} must be at least {minimum}")
    return number


def env_float(name: str, default: float, *, minimum: float, maximum: float) -> float:
    value = env_str(name)
    if value is None or value.strip() == "":
        return default
    try:
        number = float(value)
    except ValueError as exc:
        raise EnvironmentInvalid(f"{name}={value!r} is not a number") from exc
    if not minimum <= number <= maximum:  # also refuses nan
        raise EnvironmentInvalid(f"{name}={number} must be between {minimum} and {maximum}")
    return number


def env_list(name: str, default: str = "") -> list[str]:
    value = env_str(name, default) or ""
    return [item.strip() for item in value.split(",") if item.strip()]


def env_cidrs(name: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    try:
        return tuple(ipaddress.ip_network(item, strict=False) for item in env_list(name))
    except ValueError as exc:
        raise EnvironmentInvalid(f"{name}: {exc} (expected comma-separated CIDRs such as 10.0.0.0/8)") from exc


REGION_NAME = re.compile(r"^[a-z][a-z0-9-]{0,31}$")


def env_regions(name: str) -> list[str]:
    """Region names, the first the home region: lower-case letters, digits and dashes, unique; default `home`."""
    regions = env_list(name) or ["home"]
    bad = [region for region in regions if not REGION_NAME.match(region)]
    if bad:
        raise EnvironmentInvalid(f"{name}: {', '.join(map(repr, bad))} are not region names (lower-case letters, "
                                 "digits and dashes, starting with a letter, at most 32)")
    if len(set(regions)) != len(regions):
        raise EnvironmentInvalid(f"{name}={','.join(regions)} names a region twice")
    return regions


def broker_tls(url: str | None) -> dict[str, object] | None:
    """TLS options for an `amqps://` broker URL: the certificate verified and its host name checked against the
    URL's (py-amqp checks the host name only when told it); LOOKOUT_BROKER_CA_FILE: a CA bundle of its own."""
    if not url or not url.startswith("amqps://"):
        return None
    host = urlsplit(url.split(";")[0]).hostname
    options: dict[str, object] = {"cert_reqs": ssl.CERT_REQUIRED, "server_hostname": host}
    ca_file = env_str("LOOKOUT_BROKER_CA_FILE")
    if ca_file:
        options["ca_certs"] = ca_file
    return options
