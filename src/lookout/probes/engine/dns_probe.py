"""The dns type: dns://RESOLVER[:PORT]/NAME asks that server, dns:///NAME the system resolver (from
/etc/resolv.conf, which the operator chose and which is therefore not subject to the target policy).

Up when the answer has at least one record of ``record_type`` and, if set, ``expected_answer`` is among
them. An explicit resolver is a target like any other: its address must pass the policy. So must every
address in an A or AAAA answer: otherwise a DNS monitor would read out internal DNS to whoever can create
monitors. The whole lookup is the dns phase.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

import dns.exception
import dns.rdata
import dns.rdtypes.IN.A
import dns.rdtypes.IN.AAAA
import dns.rdtypes.mxbase
import dns.rdtypes.nsbase
import dns.rdtypes.txtbase
import dns.resolver

from lookout.probes.engine.resolve import (
    RECORD_TYPE_CODES,
    host_addresses,
    name_absolute,
    nameserver_errors_text,
    resolver_for,
    system_resolver,
)
from lookout.probes.engine.run import DeadlineExceeded, Observation, ProbeError, ProbeRun
from lookout.probes.engine.spec import RECORD_TYPES, ProbeSpec
from lookout.probes.engine.targets import UnsafeTarget, address_check, ip_literal

TYPE = "dns"
SCHEMES = ("dns",)
# The ProbeSpec fields this type reads, besides those every type has (url, timeout, conditions, policy).
SPEC_FIELDS = ("record_type", "expected_answer", "ip_version")

_MAX_ANSWER_CHARS = 500


def url_rule(url: str) -> None:
    """Raise ValueError, with a message for the user, unless url is dns://RESOLVER[:PORT]/NAME or dns:///NAME."""
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if parts.scheme != "dns" or not name or "/" in name or len(name) > 253:
        raise ValueError("A dns monitor's url is dns://RESOLVER/NAME, or dns:///NAME for the system resolver.")
    try:
        parts.port  # noqa: B018 (raises on a malformed port)
    except ValueError as exc:
        raise ValueError(f"Invalid resolver port in {url!r}.") from exc


def target_hosts(url: str) -> list[tuple[str, str]]:
    resolver, _, _ = _parse(url)
    return [(resolver, "resolver")] if resolver else []


def probe(spec: ProbeSpec, run: ProbeRun) -> Observation:
    observation = Observation()
    run.clock.enter("dns")
    record_type = spec.record_type.upper()
    name = spec.url
    try:
        resolver_host, port, name = _parse(spec.url)
        if record_type not in RECORD_TYPES:
            raise ProbeError(f"unsupported record type {spec.record_type!r} (one of {', '.join(RECORD_TYPES)})")
        qname = name_absolute(name)
        if resolver_host:
            address = host_addresses(resolver_host, deadline=run.deadline, ip_version=spec.ip_version)[0]
            address_check(address, spec.policy, host=resolver_host, what="resolver")
            resolver = resolver_for(str(address), port)
        else:
            resolver = system_resolver()
        answer = resolver.resolve(qname, RECORD_TYPE_CODES[record_type], search=False,
                                  lifetime=run.deadline.remaining(), raise_on_no_answer=False)
        run.clock.stop()
        answers = [_text(record) for record in answer.rrset or ()]
        if not answers:
            raise ProbeError(f"no {record_type} records for {name}")
        if record_type in ("A", "AAAA"):
            for text in answers:
                address_check(ipaddress.ip_address(text), spec.policy, host=name)
        observation.answer = observation.body = _clip(", ".join(answers))
        if spec.expected_answer is not None and not any(
            _matches(spec.expected_answer, text, record_type) for text in answers
        ):
            observation.error = f"expected answer {spec.expected_answer!r} is not among the answers"
    except (UnsafeTarget, ProbeError) as exc:
        observation.error = str(exc)
        observation.refused = isinstance(exc, UnsafeTarget)
    except (DeadlineExceeded, dns.resolver.LifetimeTimeout):  # the lifetime was what was left of the deadline
        observation.error = run.timeout_text()
    except dns.resolver.NXDOMAIN:
        observation.error = f"{name} does not exist (NXDOMAIN)"
    except dns.resolver.NoNameservers as exc:
        observation.error = f"the resolver could not answer for {name} ({nameserver_errors_text(exc)})"
    except (dns.exception.DNSException, OSError) as exc:
        observation.error = f"DNS query failed: {exc}"
    return observation


def _parse(url: str) -> tuple[str | None, int, str]:
    """(resolver host or None for the system resolver, its port, the name to query)."""
    try:
        parts = urlsplit(url)
        port = parts.port or 53
    except ValueError as exc:
        raise UnsafeTarget(f"invalid URL {url!r}: {exc}") from exc
    name = parts.path.lstrip("/")
    if parts.scheme != "dns" or not name or "/" in name or parts.query or parts.fragment:
        raise UnsafeTarget(f"invalid URL {url!r}: expected dns://RESOLVER/NAME or dns:///NAME")
    return parts.hostname or None, port, name


def _text(record: dns.rdata.Rdata) -> str:
    # By class, as dnspython builds them (MX, CNAME, NS and TXT by their base classes): typed attributes.
    if isinstance(record, dns.rdtypes.IN.A.A | dns.rdtypes.IN.AAAA.AAAA):
        return str(record.address)
    if isinstance(record, dns.rdtypes.mxbase.MXBase):
        return f"{record.preference} {record.exchange.to_text(omit_final_dot=True)}"
    if isinstance(record, dns.rdtypes.nsbase.NSBase):
        return record.target.to_text(omit_final_dot=True)
    if isinstance(record, dns.rdtypes.txtbase.TXTBase):
        return b"".join(record.strings).decode("utf-8", errors="replace")
    return str(record)


def _matches(expected: str, answer: str, record_type: str) -> bool:
    """Names compare case-insensitively without the final dot, addresses as addresses, TXT exactly;
    an MX answer matches its exchange alone or "PREFERENCE EXCHANGE"."""
    if record_type == "TXT":
        return expected == answer
    wanted = expected.strip().rstrip(".").lower()
    if record_type in ("A", "AAAA"):
        literal = ip_literal(wanted)
        return literal is not None and literal == ip_literal(answer)
    answer = answer.lower()
    if record_type == "MX":
        return wanted in (answer, answer.split(" ", 1)[-1]) or " ".join(wanted.split()) == answer
    return wanted == answer


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_ANSWER_CHARS else text[: _MAX_ANSWER_CHARS - 3] + "..."
