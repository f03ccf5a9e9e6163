"""Safe targets: which addresses a probe may reach (SSRF protection).

By default only globally routable unicast addresses are allowed. The same rules apply when a monitor is
saved (``target_check``, which resolves host names) and when it is probed, to the address actually
connected to: a name re-pointed at an internal address after it was saved (DNS rebinding), or a redirect
to an internal host, fails the probe before any connection to it is made.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_HOW_TO_ALLOW = (
    "internal targets are refused unless the operator allows them "
    "(LOOKOUT_ALLOW_PRIVATE_TARGETS, LOOKOUT_TARGET_ALLOWLIST)"
)

# Most specific first: the first network that contains an address names the reason it is refused.
_REFUSED: tuple[tuple[IPNetwork, str], ...] = tuple(
    (ipaddress.ip_network(cidr), reason)
    for cidr, reason in (
        ("169.254.169.254/32", "the cloud metadata address"),
        ("fd00:ec2::254/128", "the cloud metadata address"),
        ("0.0.0.0/8", "an unspecified address"),
        ("::/128", "an unspecified address"),
        ("127.0.0.0/8", "a loopback address"),
        ("::1/128", "a loopback address"),
        ("10.0.0.0/8", "a private address (RFC 1918)"),
        ("172.16.0.0/12", "a private address (RFC 1918)"),
        ("192.168.0.0/16", "a private address (RFC 1918)"),
        ("fc00::/7", "a private address (IPv6 unique local)"),
        ("100.64.0.0/10", "a shared address (carrier-grade NAT, RFC 6598)"),
        ("169.254.0.0/16", "a link-local address"),
        ("fe80::/10", "a link-local address"),
        ("224.0.0.0/4", "a multicast address"),
        ("ff00::/8", "a multicast address"),
        ("255.255.255.255/32", "the broadcast address"),
    )
)
# IPv6 prefixes that embed an IPv4 address the packet may end up at (RFC 6052 NAT64, RFC 3056 6to4).
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


@dataclass(frozen=True)
class TargetPolicy:
    allow_private: bool = False  # LOOKOUT_ALLOW_PRIVATE_TARGETS=1: every address is allowed
    allowlist: tuple[IPNetwork, ...] = ()  # LOOKOUT_TARGET_ALLOWLIST: these networks are allowed

    def refusal(self, address: IPAddress) -> str | None:
        """Why this policy refuses the address ("a loopback address"), or None when it is allowed."""
        if self.allow_private:
            return None
        embedded = _embedded_ipv4(address)
        if any(candidate in network for candidate in (address, embedded) if candidate is not None
               for network in self.allowlist if candidate.version == network.version):
            return None
        return address_refusal(address)


class UnsafeTarget(ValueError):
    """The target is, or resolves to, an address the policy refuses. The message is fit for an API client."""


def address_refusal(address: IPAddress) -> str | None:
    """Why an address is not a safe target by default, or None for a globally routable unicast address."""
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        reason = address_refusal(embedded)
        return f"{reason}, embedded in an IPv6 address" if reason else None
    for network, reason in _REFUSED:
        if address.version == network.version and address in network:
            return reason
    if not address.is_global:
        return "a reserved address (not globally routable)"
    return None


def address_check(address: IPAddress, policy: TargetPolicy, *, host: str | None = None, what: str = "") -> None:
    """Raise UnsafeTarget if the policy refuses the address; ``host`` is the name it was resolved from."""
    reason = policy.refusal(address)
    if reason is None:
        return
    prefix = f"{what} " if what else ""
    if host is not None and ip_literal(host) is None:
        # The address itself is left out: error texts reach API clients, who need not map internal DNS.
        raise UnsafeTarget(f"{prefix}{host} resolves to {reason}; {_HOW_TO_ALLOW}")
    shown = host.strip("[]") if host is not None else address  # as written: ::ffff:127.0.0.1, not ::ffff:7f00:1
    raise UnsafeTarget(f"{prefix}{shown} is {reason}; {_HOW_TO_ALLOW}")


def ip_literal(host: str) -> IPAddress | None:
    """The address if ``host`` is an IP literal ("10.0.0.1", "::1", "[::1]"), else None."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    if address.version != 6:
        return None
    assert isinstance(address, ipaddress.IPv6Address)
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def host_name_check(host: str) -> None:
    """Raise ValueError unless host is an IP literal or a DNS name (single labels such as Kubernetes service
    names included: they resolve through the search domains)."""
    if ip_literal(host) is not None:
        return
    try:
        ascii_host = host.rstrip(".").encode("idna").decode("ascii").lower()
    except UnicodeError as exc:
        raise ValueError(f"{host!r} is not a valid host name.") from exc
    if not ascii_host or len(ascii_host) > 253 or not all(_LABEL.match(label) for label in ascii_host.split(".")):
        raise ValueError(f"{host!r} is not a valid host name.")
