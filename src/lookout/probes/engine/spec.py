"""What a probe is asked to do (ProbeSpec) and what it found (Outcome, TlsFacts)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from lookout import __version__
from lookout.probes.engine.targets import TargetPolicy

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
DEFAULT_MAX_REDIRECTS = 5
USER_AGENT = f"Lookout/{__version__} (uptime monitor)"
RECORD_TYPES = ("A", "AAAA", "CNAME", "MX", "TXT", "NS")
# After blackbox_exporter's phases; the metric label values of lookout_probe_phase_duration_seconds.
PHASES = ("dns", "connect", "tls", "processing", "transfer")


def region_user_agent(region: str) -> str:
    """What an http probe from this region says it is, so a target's operator can tell the regions apart."""
    return f"Lookout/{__version__} (region {region})"


@dataclass(frozen=True)
class ProbeSpec:
    url: str  # http(s)://..., tcp://HOST:PORT, dns://RESOLVER[:PORT]/NAME or dns:///NAME (system resolver)
    type: str = "http"  # one of lookout.probes.engine.types.PROBE_TYPES (push monitors have no probe)
    # http
    method: str = "GET"
    body: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    basic_auth: tuple[str, str] | None = None  # dropped by requests on a redirect to another host
    follow_redirects: bool = True
    max_redirects: int = DEFAULT_MAX_REDIRECTS
    expected_status: tuple[int, ...] | None = None  # None: any 2xx or 3xx, unless a condition tests [STATUS]
    keyword: str | None = None  # the body (its first max_body_bytes) must contain it
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES  # also the cap on what a tcp probe reads
    ip_version: int | None = None  # 4 or 6: only that family; None: IPv4 if the name has an A record, else IPv6
    verify_tls: bool = True
    ca_pem: str | None = None  # PEM certificates to trust instead of the default (certifi) bundle
    conditions: tuple[str, ...] = ()  # see lookout.probes.engine.conditions
    # tcp
    send: bytes | None = None
    expect: bytes | None = None
    # dns
    record_type: str = "A"  # one of RECORD_TYPES
    expected_answer: str | None = None
    # all
    timeout: float = 10.0  # seconds, a TOTAL deadline for the whole probe
    policy: TargetPolicy = field(default_factory=TargetPolicy)
    # The prober's, not the monitor's (like policy): None is USER_AGENT. A User-Agent in headers still wins.
    user_agent: str | None = None


@dataclass(frozen=True)
class TlsFacts:
    not_after: datetime  # timezone-aware UTC
    not_before: datetime
    issuer: str  # RFC 4514, e.g. "CN=R11,O=Let's Encrypt,C=US"
    subject: str
    days_left: float  # negative once expired
    version: str  # "TLSv1.3"
    verified: bool  # the chain and host name were verified (False when verify_tls is off or verification failed)


@dataclass(frozen=True)
class Outcome:
    success: bool
    status_code: int | None  # final response's status, None if no response (and for tcp and dns)
    response_time_ms: float  # the sum of the phases: from the start of the probe to the end of the network work
    error: str  # "" on success, else a short human-readable reason (at most 500 characters)
    started_at: datetime  # timezone-aware UTC, when the probe started
    phases: Mapping[str, float] = field(default_factory=dict)  # seconds per phase (PHASES), only those reached
    tls: TlsFacts | None = None
    failed_condition: str | None = None  # the text of the first condition that did not hold
    answer: str | None = None  # dns: the answers, ", "-joined
    # The target policy refused an address before any packet went to it (error names the host and the rule):
    # retrying cannot help until the name or the policy changes.
    refused: bool = False
