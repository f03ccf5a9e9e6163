"""The tcp type, against TCP servers the test starts on loopback (an echo server among them)."""

from __future__ import annotations

import socket
import time

import pytest

from lookout.probes.engine import ProbeSpec, TargetPolicy, probe

LOCAL = TargetPolicy(allow_private=True)


def echo(conn: socket.socket, server) -> None:
    while data := conn.recv(4096):
        conn.sendall(data)


def tcp_spec(server, **options) -> ProbeSpec:
    return ProbeSpec(f"tcp://{server.address}", type="tcp", policy=LOCAL, timeout=options.pop("timeout", 5),
                     **options)


def test_a_port_that_accepts_is_up(tcp_server) -> None:
    server = tcp_server(echo)

    outcome = probe(tcp_spec(server))

    assert outcome.success is True, outcome.error
    assert outcome.status_code is None
    deadline = time.monotonic() + 2
    while server.connections == 0 and time.monotonic() < deadline:  # the accept loop may lag the probe
        time.sleep(0.01)
    assert server.connections == 1


def test_the_echo_server_returns_what_was_sent(tcp_server) -> None:
    server = tcp_server(echo)

    outcome = probe(tcp_spec(server, send=b"PING lookout\r\n", expect=b"PING lookout"))

    assert outcome.success is True, outcome.error


def test_a_banner_is_expected_without_sending_anything(tcp_server) -> None:
    server = tcp_server(lambda conn, server: conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n"))

    assert probe(tcp_spec(server, expect=b"SSH-2.0-")).success is True


def test_a_different_answer_then_a_close_is_a_failure_showing_what_came(tcp_server) -> None:
    def nope(conn, server) -> None:
        conn.recv(100)
        conn.sendall(b"-ERR unknown command\r\n")

    server = tcp_server(nope)

    outcome = probe(tcp_spec(server, send=b"PING\r\n", expect=b"+PONG"))

    assert outcome.success is False
    assert outcome.error == ("connection closed before b'+PONG' was received "
                             "(received 22 bytes: b'-ERR unknown command\\r\\n')")


def test_an_expectation_never_met_fails_at_the_deadline(tcp_server) -> None:
    def drip(conn, server) -> None:  # one byte every 50 ms, never the expected one
        while not server.stop.wait(0.05):
            conn.sendall(b".")

    server = tcp_server(drip)
    start = time.perf_counter()

    outcome = probe(tcp_spec(server, expect=b"READY", timeout=0.5))

    assert outcome.error.startswith("timed out after 0.5s waiting for b'READY' (received ")
    assert time.perf_counter() - start < 0.8


def test_reading_stops_at_the_cap(tcp_server) -> None:
    def flood(conn, server) -> None:
        while not server.stop.is_set():
            conn.sendall(b"x" * 65536)

    server = tcp_server(flood)

    outcome = probe(tcp_spec(server, expect=b"READY", max_body_bytes=100_000))

    assert outcome.error == "expected b'READY' not found in the first 100000 bytes"


def test_a_closed_port_is_refused() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()

    outcome = probe(ProbeSpec(f"tcp://127.0.0.1:{port}", type="tcp", policy=LOCAL, timeout=2))

    assert outcome.error == "connection refused"
    assert list(outcome.phases) == ["dns", "connect"]


def test_conditions_see_what_was_read(tcp_server) -> None:
    server = tcp_server(lambda conn, server: conn.sendall(b"220 mail.lookout.test ESMTP ready\r\n"))

    holds = probe(tcp_spec(server, expect=b"\r\n", conditions=('[BODY] contains "ESMTP"',)))
    fails = probe(tcp_spec(server, expect=b"\r\n", conditions=('[BODY] contains "LMTP"',)))

    assert holds.success is True, holds.error
    assert fails.error.startswith("condition failed: [BODY] contains \"LMTP\" (body was '220 mail.lookout.test")


def test_ipv6_and_the_ip_version_preference(tcp_server, local_names) -> None:
    server = tcp_server(echo, host="::1")

    literal = probe(ProbeSpec(f"tcp://[::1]:{server.port}", type="tcp", policy=LOCAL, timeout=2))
    by_name = probe(ProbeSpec(f"tcp://app.lookout.test:{server.port}", type="tcp", policy=LOCAL, ip_version=6,
                              timeout=2))
    ipv4_of_v6_only = probe(ProbeSpec(f"tcp://v6only.lookout.test:{server.port}", type="tcp", policy=LOCAL,
                                      ip_version=4, timeout=2))
    fallback = probe(ProbeSpec(f"tcp://v6only.lookout.test:{server.port}", type="tcp", policy=LOCAL, timeout=2))

    assert literal.success is True, literal.error
    assert by_name.success is True, by_name.error
    assert ("app.lookout.test", "AAAA") in local_names.queries
    assert ("app.lookout.test", "A") not in local_names.queries
    assert ipv4_of_v6_only.error == "DNS lookup failed for host v6only.lookout.test: no A record"
    assert fallback.success is True, fallback.error  # no A record: IPv6 it is


@pytest.mark.parametrize("url", ["tcp://127.0.0.1", "tcp://:80", "tcp://127.0.0.1:99999"])
def test_a_bad_tcp_url_is_a_failure_not_an_exception(url: str) -> None:
    outcome = probe(ProbeSpec(url, type="tcp", policy=LOCAL, timeout=2))

    assert outcome.success is False
    assert outcome.error.startswith(f"invalid URL {url!r}")
