"""Name resolution for probes, done by the engine itself rather than by the socket library.

dnspython talks to the name servers over ordinary sockets, so under gevent's monkey-patching every lookup
is a cooperative wait; gevent's default resolver instead runs getaddrinfo in a small thread pool, where
lookups queue behind each other at high concurrency. Resolving here also lets the engine check the
address it is about to connect to (lookout.probes.engine.targets) and time the dns phase on its own.

Order, like a libc resolver: IP literals, then the hosts file, then RFC 6761 special names (``localhost``,
``*.invalid``), then DNS with the search list from /etc/resolv.conf. Unlike libc, a name with at least one
dot is tried as an absolute name first whatever ``ndots`` says, because Kubernetes' ``ndots:5`` would
otherwise try every search domain first and multiply the lookups of every external name by four.
No answers are cached: every probe times a real lookup, as blackbox_exporter's do.
"""

from __future__ import annotations

import ipaddress
import os
import threading
from collections.abc import Sequence

import dns.exception
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.resolver

from lookout.probes.engine.run import Deadline, DeadlineExceeded, ProbeError
from lookout.probes.engine.targets import IPAddress, TargetPolicy, address_check, ip_literal

HOSTS_PATH = "/etc/hosts"


class LookupFailed(ProbeError):
    """The name did not resolve to an address of a usable family."""


_lock = threading.Lock()
_system: dns.resolver.Resolver | None = None
_hosts: tuple[int, dict[str, list[IPAddress]]] | None = None


def nameservers_set(nameservers: Sequence[str] | None) -> None:
    """Resolve host names with these servers ("10.0.0.10", "127.0.0.1:5353", "[::1]:53") instead of
    /etc/resolv.conf's; None goes back to /etc/resolv.conf. For the whole process (tests, special setups)."""
    global _system
    with _lock:
        if nameservers is None:
            _system = None
            return
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [dns.nameserver.Do53Nameserver(*nameserver_parse(text)) for text in nameservers]
        _system = resolver


def nameserver_parse(text: str, default_port: int = 53) -> tuple[str, int]:
    """ "127.0.0.1:5353" -> ("127.0.0.1", 5353); "[::1]" -> ("::1", 53); raises ValueError."""
    host, port = text, default_port
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest:
            port = int(rest.removeprefix(":"))
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        port = int(port_text)
    if ip_literal(host) is None or not 0 < port < 65536:
        raise ValueError(f"not a name server address: {text!r}")
    return host, port


def resolver_for(address: str, port: int) -> dns.resolver.Resolver:
    """A resolver that asks exactly one server and nothing else (no search list)."""
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [dns.nameserver.Do53Nameserver(address, port)]
    return resolver


def system_resolver() -> dns.resolver.Resolver:
    global _system
    with _lock:
        if _system is None:
            try:
                resolver = dns.resolver.Resolver()
            except dns.resolver.NoResolverConfiguration as exc:
                raise LookupFailed("no DNS resolver configured (/etc/resolv.conf has no nameserver)") from exc
            resolver.ndots = 1 if resolver.ndots is None else min(resolver.ndots, 1)
            resolver.cache = None
            _system = resolver
        return _system


def host_addresses(host: str, *, deadline: Deadline, ip_version: int | None = None,
                   every_family: bool = False) -> list[IPAddress]:
    """The addresses to connect to for ``host``, best first; raises LookupFailed or DeadlineExceeded.

    ip_version 4 or 6 asks for that family only. None prefers IPv4 and falls back to IPv6 when the name
    has no A record; ``every_family`` (save-time checks) returns both families' addresses instead.
    """
    literal = ip_literal(host)
    if literal is not None:
        if ip_version is not None and literal.version != ip_version:
            raise LookupFailed(f"{host} is not an IPv{ip_version} address (the monitor asks for IPv{ip_version})")
        return [literal]
    name = host.rstrip(".").lower()
    families = (4, 6) if ip_version is None else (ip_version,)
    found = [address for address in _hosts_file().get(name, ()) if address.version in families]
    if not found and (name == "localhost" or name.endswith(".localhost")):
        found = [ipaddress.ip_address(text) for text, version in (("127.0.0.1", 4), ("::1", 6))
                 if version in families]
    if found:
        return found if every_family or ip_version else _preferred(found)
    if name == "invalid" or name.endswith(".invalid"):
        raise LookupFailed(f"DNS lookup failed for host {host}: no such domain (NXDOMAIN)")
    resolver = system_resolver()
    for version in families:
        found.extend(_query(resolver, host, "A" if version == 4 else "AAAA", deadline))
        if found and not every_family:
            break
    if not found:
        wanted = {None: "A or AAAA", 4: "A", 6: "AAAA"}[ip_version]
        raise LookupFailed(f"DNS lookup failed for host {host}: no {wanted} record")
    return found


def _preferred(addresses: list[IPAddress]) -> list[IPAddress]:
    ipv4: list[IPAddress] = [address for address in addresses if address.version == 4]
    return ipv4 or addresses


def _query(resolver: dns.resolver.Resolver, host: str, rdtype: str, deadline: Deadline) -> list[IPAddress]:
    try:
        answer = resolver.resolve(host, rdtype, search=True, lifetime=deadline.remaining(),
                                  raise_on_no_answer=False)
    except dns.resolver.NXDOMAIN as exc:
        raise LookupFailed(f"DNS lookup failed for host {host}: no such domain (NXDOMAIN)") from exc
    except dns.resolver.LifetimeTimeout as exc:
        # The lifetime was what was left of the probe's deadline.
        raise DeadlineExceeded() from exc
    except dns.resolver.NoNameservers as exc:
        reason = nameserver_errors_text(exc)
        raise LookupFailed(f"DNS lookup failed for host {host}: no name server answered it ({reason})") from exc
    except (dns.exception.DNSException, ValueError) as exc:  # ValueError: a name dnspython cannot encode
        raise LookupFailed(f"DNS lookup failed for host {host}: {exc}") from exc
    if answer.rrset is None:
        return []
    return [ipaddress.ip_address(record.address) for record in answer.rrset]


def nameserver_errors_text(exc: dns.resolver.NoNameservers) -> str:
    """The distinct answers (SERVFAIL, REFUSED...) or errors of the servers that were asked."""
    texts = []
    for error in exc.kwargs.get("errors", ()):
        # (server, tcp, port, exception or None, response or None)
        response = error[4] if len(error) > 4 else None
        text = response.rcode().name if response is not None else str(error[3])
        if text not in texts:
            texts.append(text)
    return ", ".join(texts) or "no servers"


def _hosts_file() -> dict[str, list[IPAddress]]:
    global _hosts
    try:
        mtime = os.stat(HOSTS_PATH).st_mtime_ns
    except OSError:
        return {}
    cached = _hosts
    if cached is not None and cached[0] == mtime:
        return cached[1]
    table: dict[str, list[IPAddress]] = {}
    try:
        with open(HOSTS_PATH, encoding="utf-8", errors="replace") as hosts:
            for line in hosts:
                fields = line.split("#", 1)[0].split()
                if len(fields) < 2 or (address := ip_literal(fields[0])) is None:
                    continue
                for name in fields[1:]:
                    table.setdefault(name.rstrip(".").lower(), []).append(address)
    except OSError:
        return {}
    _hosts = (mtime, table)
    return table


def name_absolute(text: str) -> dns.name.Name:
    """A DNS name from monitor input, always absolute (a DNS monitor never uses the search list)."""
    try:
        return dns.name.from_text(text.rstrip(".") + ".")
    except (dns.exception.DNSException, ValueError, UnicodeError) as exc:
        raise ProbeError(f"invalid DNS name {text!r}: {exc}") from exc


RECORD_TYPE_CODES = {name: dns.rdatatype.from_text(name) for name in ("A", "AAAA", "CNAME", "MX", "TXT", "NS")}


# A save waits at most this long for a name's addresses; a slow resolver must not hang the API.
_SAVE_TIME_LOOKUP_SECONDS = 3.0


def host_check(host: str, policy: TargetPolicy, *, resolve: bool = True, what: str = "") -> None:
    """Save-time check of one host: an IP literal is checked as it is, a name by every address it resolves to.

    A name that does not resolve (yet) is not refused here: the probe-time check still guards it.
    """
    if policy.allow_private:
        return
    literal = ip_literal(host)
    if literal is not None:
        address_check(literal, policy, host=host, what=what)
        return
    if not resolve:
        return
    try:
        addresses = host_addresses(host, deadline=Deadline(_SAVE_TIME_LOOKUP_SECONDS), every_family=True)
    except (LookupFailed, TimeoutError):
        return
    for address in addresses:
        address_check(address, policy, host=host, what=what)
