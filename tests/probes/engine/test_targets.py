"""Safe targets: every rule, when a monitor is saved (target_check) and when it is probed, for every type."""

from __future__ import annotations

import ipaddress

import pytest
from probe_servers import read_request

from lookout.probes.engine import ProbeSpec, TargetPolicy, UnsafeTarget, address_refusal, probe, target_check
from lookout.probes.engine.sockets import DeadlineSocket

DEFAULT = TargetPolicy()
HOW = ("internal targets are refused unless the operator allows them "
       "(LOOKOUT_ALLOW_PRIVATE_TARGETS, LOOKOUT_TARGET_ALLOWLIST)")
ONLY_127_0_0_1 = TargetPolicy(allowlist=(ipaddress.ip_network("127.0.0.1/32"),))

REFUSED = [
    ("127.0.0.1", "a loopback address"),
    ("127.255.255.254", "a loopback address"),
    ("::1", "a loopback address"),
    ("10.0.0.1", "a private address (RFC 1918)"),
    ("172.16.5.4", "a private address (RFC 1918)"),
    ("172.31.255.255", "a private address (RFC 1918)"),
    ("192.168.1.1", "a private address (RFC 1918)"),
    ("fd12:3456::1", "a private address (IPv6 unique local)"),
    ("169.254.169.254", "the cloud metadata address"),
    ("fd00:ec2::254", "the cloud metadata address"),
    ("169.254.10.1", "a link-local address"),
    ("fe80::1", "a link-local address"),
    ("224.0.0.1", "a multicast address"),
    ("239.255.255.250", "a multicast address"),
    ("ff02::1", "a multicast address"),
    ("0.0.0.0", "an unspecified address"),
    ("::", "an unspecified address"),
    ("100.64.0.1", "a shared address (carrier-grade NAT, RFC 6598)"),
    ("240.0.0.1", "a reserved address (not globally routable)"),
    ("255.255.255.255", "the broadcast address"),
    ("192.0.2.1", "a reserved address (not globally routable)"),  # documentation
    ("198.18.0.1", "a reserved address (not globally routable)"),  # benchmarking
    ("2001:db8::1", "a reserved address (not globally routable)"),  # documentation
    ("::ffff:127.0.0.1", "a loopback address, embedded in an IPv6 address"),
    ("::ffff:169.254.169.254", "the cloud metadata address, embedded in an IPv6 address"),
    ("2002:a00:1::1", "a private address (RFC 1918), embedded in an IPv6 address"),  # 6to4 of 10.0.0.1
    ("64:ff9b::a9fe:a9fe", "the cloud metadata address, embedded in an IPv6 address"),  # NAT64 of 169.254.169.254
]
ALLOWED = ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]


def url_host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every address the engine connects a socket to, so a test can prove a refusal sent nothing."""
    seen: list[str] = []
    original = DeadlineSocket.connect

    def recording(self: DeadlineSocket, address: tuple) -> None:
        seen.append(address[0])
        original(self, address)

    monkeypatch.setattr(DeadlineSocket, "connect", recording)
    return seen


# --- the rules -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("address", "reason"), REFUSED)
def test_each_internal_address_is_refused_by_default_with_its_reason(address: str, reason: str) -> None:
    assert address_refusal(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize("address", ALLOWED)
def test_public_addresses_are_allowed(address: str) -> None:
    assert address_refusal(ipaddress.ip_address(address)) is None
    target_check(f"https://{url_host(address)}/health", DEFAULT)


@pytest.mark.parametrize(("address", "reason"), REFUSED)
def test_saving_a_url_with_an_internal_address_is_refused_with_a_clear_message(address: str, reason: str) -> None:
    with pytest.raises(UnsafeTarget) as refused:
        target_check(f"http://{url_host(address)}:8080/path", DEFAULT)

    assert str(refused.value) == f"{address} is {reason}; {HOW}"


@pytest.mark.parametrize(("address", "reason"), REFUSED)
def test_probing_an_internal_address_fails_before_connecting(address: str, reason: str, connects) -> None:
    outcome = probe(ProbeSpec(f"http://{url_host(address)}:8080/", timeout=2))

    assert outcome.success is False
    assert outcome.error == f"{address} is {reason}; {HOW}"
    assert connects == []


def test_the_default_policy_refuses_a_live_loopback_server(tcp_server, connects) -> None:
    server = tcp_server(lambda conn, server: None)

    outcome = probe(ProbeSpec(f"http://127.0.0.1:{server.port}/"))

    assert outcome.error.startswith("127.0.0.1 is a loopback address")
    assert connects == [] and server.connections == 0


# --- opening it up -------------------------------------------------------------------------------


@pytest.mark.parametrize(("address", "reason"), REFUSED)
def test_allow_private_allows_every_address(address: str, reason: str) -> None:
    assert TargetPolicy(allow_private=True).refusal(ipaddress.ip_address(address)) is None
    target_check(f"http://{url_host(address)}/", TargetPolicy(allow_private=True))


def test_an_allowlist_opens_exactly_its_networks() -> None:
    policy = TargetPolicy(allowlist=(ipaddress.ip_network("10.20.0.0/16"), ipaddress.ip_network("fd00:1::/32")))

    target_check("http://10.20.3.4/", policy)
    target_check("http://[::ffff:10.20.3.4]/", policy)  # the same IPv4 address, IPv4-mapped
    target_check("http://[fd00:1::5]/", policy)
    for outside in ("10.21.0.1", "127.0.0.1", "[fd00:2::5]", "169.254.169.254"):
        with pytest.raises(UnsafeTarget):
            target_check(f"http://{outside}/", policy)


def test_an_allowlisted_loopback_server_is_probed(tcp_server) -> None:
    def ok(conn, server) -> None:
        read_request(conn)
        conn.sendall(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")

    server = tcp_server(ok)

    assert probe(ProbeSpec(f"http://127.0.0.1:{server.port}/", policy=ONLY_127_0_0_1)).success is True


# --- names ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("host", "reason"), [
    ("internal.lookout.test", "a private address (RFC 1918)"),
    ("metadata.lookout.test", "the cloud metadata address"),
    ("mixed.lookout.test", "a private address (RFC 1918)"),  # one public and one private address
    ("app.lookout.test", "a loopback address"),
    ("v6only.lookout.test", "a loopback address"),
])
def test_saving_a_name_that_resolves_to_an_internal_address_is_refused(local_names, host: str, reason: str) -> None:
    with pytest.raises(UnsafeTarget) as refused:
        target_check(f"https://{host}/", DEFAULT)

    assert str(refused.value) == f"{host} resolves to {reason}; {HOW}"  # the address itself is not told


def test_saving_a_name_that_resolves_to_public_addresses_is_allowed(local_names) -> None:
    target_check("https://public.lookout.test/", DEFAULT)
    target_check("https://alias.lookout.test/", DEFAULT)  # a CNAME to it
    assert ("public.lookout.test", "AAAA") in local_names.queries  # every family is checked


def test_localhost_names_are_refused_without_asking_dns(local_names) -> None:
    for host in ("localhost", "LOCALHOST.", "api.localhost"):
        with pytest.raises(UnsafeTarget, match="resolves to a loopback address"):
            target_check(f"http://{host}/", DEFAULT)
    assert local_names.queries == []


def test_a_name_that_does_not_resolve_yet_is_accepted_when_saved(local_names) -> None:
    target_check("https://not-yet.lookout.test/", DEFAULT)


def test_without_resolving_only_ip_literals_are_checked(local_names) -> None:
    target_check("https://internal.lookout.test/", DEFAULT, resolve=False)
    with pytest.raises(UnsafeTarget):
        target_check("https://10.0.0.1/", DEFAULT, resolve=False)
    assert local_names.queries == []


def test_probing_a_name_that_resolves_to_a_private_address_fails_before_connecting(local_names, connects) -> None:
    outcome = probe(ProbeSpec("http://internal.lookout.test/", timeout=2))

    assert outcome.error == f"internal.lookout.test resolves to a private address (RFC 1918); {HOW}"
    assert connects == []


def test_dns_rebinding_after_the_save_is_caught_at_probe_time(local_names, tcp_server, connects) -> None:
    server = tcp_server(lambda conn, server: None)
    local_names.records[("rebind.lookout.test", "A")] = ["93.184.216.34"]
    target_check(f"http://rebind.lookout.test:{server.port}/", DEFAULT)  # public when saved

    local_names.records[("rebind.lookout.test", "A")] = ["127.0.0.1"]  # then re-pointed inside
    outcome = probe(ProbeSpec(f"http://rebind.lookout.test:{server.port}/", timeout=2))

    assert outcome.error.startswith("rebind.lookout.test resolves to a loopback address")
    assert connects == [] and server.connections == 0


# --- redirects -----------------------------------------------------------------------------------


def redirecting_to(location: str):
    def handler(conn, server) -> None:
        read_request(conn)
        conn.sendall(f"HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\n"
                     "Connection: close\r\n\r\n".encode())
    return handler


def test_a_redirect_to_the_metadata_address_is_refused_without_connecting(tcp_server, connects) -> None:
    server = tcp_server(redirecting_to("http://169.254.169.254/latest/meta-data/iam/"))

    outcome = probe(ProbeSpec(f"http://127.0.0.1:{server.port}/", policy=ONLY_127_0_0_1, timeout=2))

    assert outcome.success is False
    assert outcome.error == f"redirect to 169.254.169.254 is the cloud metadata address; {HOW}"
    assert connects == ["127.0.0.1"]  # the first hop only


def test_a_redirect_to_another_internal_host_is_refused_and_it_sees_no_connection(tcp_server, connects) -> None:
    inside = tcp_server(redirecting_to("/never"), host="127.0.0.2")
    server = tcp_server(redirecting_to(f"http://127.0.0.2:{inside.port}/admin"))

    outcome = probe(ProbeSpec(f"http://127.0.0.1:{server.port}/", policy=ONLY_127_0_0_1, timeout=2))

    assert outcome.error == f"redirect to 127.0.0.2 is a loopback address; {HOW}"
    assert inside.connections == 0
    assert connects == ["127.0.0.1"]


def test_a_redirect_to_a_name_resolving_inside_is_refused(tcp_server, local_names, connects) -> None:
    server = tcp_server(redirecting_to("http://internal.lookout.test/"))

    outcome = probe(ProbeSpec(f"http://127.0.0.1:{server.port}/", policy=ONLY_127_0_0_1, timeout=2))

    assert outcome.error == f"redirect to internal.lookout.test resolves to a private address (RFC 1918); {HOW}"
    assert connects == ["127.0.0.1"]


# --- tcp and dns targets -------------------------------------------------------------------------


def test_tcp_targets_follow_the_same_rules(tcp_server, connects) -> None:
    server = tcp_server(lambda conn, server: None)

    with pytest.raises(UnsafeTarget, match="^10.0.0.5 is a private address"):
        target_check("tcp://10.0.0.5:5432", DEFAULT)
    target_check("tcp://93.184.216.34:443", DEFAULT)
    outcome = probe(ProbeSpec(f"tcp://127.0.0.1:{server.port}", type="tcp"))

    assert outcome.error.startswith("127.0.0.1 is a loopback address")
    assert connects == [] and server.connections == 0


def test_an_explicit_dns_resolver_follows_the_same_rules(dns_server) -> None:
    with pytest.raises(UnsafeTarget, match="^resolver 10.0.0.53 is a private address"):
        target_check("dns://10.0.0.53/example.com", DEFAULT)
    with pytest.raises(UnsafeTarget, match="^resolver 169.254.169.253 is a link-local address"):
        target_check("dns://169.254.169.253:53/example.com", DEFAULT)
    target_check("dns://8.8.8.8/example.com", DEFAULT)
    target_check("dns:///example.com", DEFAULT)  # the system resolver is the operator's choice

    outcome = probe(ProbeSpec(f"dns://{dns_server.address}/public.lookout.test", type="dns"))

    assert outcome.error == f"resolver 127.0.0.1 is a loopback address; {HOW}"
    assert dns_server.queries == []


@pytest.mark.parametrize("url", ["ftp://example.com/", "file:///etc/passwd", "gopher://127.0.0.1/", "http:///path",
                                 "tcp://example.com", "dns://", "http://[::1/"])
def test_urls_that_cannot_be_checked_are_refused(url: str) -> None:
    with pytest.raises(UnsafeTarget):
        target_check(url, TargetPolicy(allow_private=True))
