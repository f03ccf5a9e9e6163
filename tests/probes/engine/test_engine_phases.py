"""Per-phase timings: each phase measures what it says, and the phases add up to the probe's total."""

from __future__ import annotations

import ipaddress
import time

import pytest
from probe_servers import read_request

from lookout.probes.engine import Outcome, ProbeSpec, TargetPolicy, probe

LOCAL = TargetPolicy(allow_private=True)


def timed(spec: ProbeSpec) -> tuple[Outcome, float]:
    start = time.perf_counter()
    outcome = probe(spec)
    return outcome, (time.perf_counter() - start) * 1000


def assert_adds_up(outcome: Outcome, wall_ms: float) -> None:
    # By construction the phases partition the total, and the total lies within the span the caller measured
    # (how much set-up falls outside it is a figure for bench/, not a test).
    assert sum(outcome.phases.values()) * 1000 == pytest.approx(outcome.response_time_ms, abs=1e-6)
    assert outcome.response_time_ms <= wall_ms


def slow_answer(think: float, drip: float):
    def handler(conn, server) -> None:
        read_request(conn)
        time.sleep(think)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nConnection: close\r\n\r\n")
        for _ in range(10):
            time.sleep(drip / 10)
            conn.sendall(b"x")
    return handler


def test_http_phases_measure_the_wait_for_the_first_byte_and_the_body_and_add_up(tcp_server) -> None:
    server = tcp_server(slow_answer(think=0.2, drip=0.2))

    outcome, wall_ms = timed(ProbeSpec(f"http://127.0.0.1:{server.port}/", policy=LOCAL, timeout=5))

    assert outcome.success is True, outcome.error
    assert list(outcome.phases) == ["dns", "connect", "processing", "transfer"]
    assert outcome.phases["processing"] == pytest.approx(0.2, abs=0.05)
    # The status line arrives with the headers, before the drip: transfer is the body's 10 x 20 ms.
    assert outcome.phases["transfer"] == pytest.approx(0.2, abs=0.05)
    assert outcome.phases["dns"] < 0.01 and outcome.phases["connect"] < 0.01
    assert_adds_up(outcome, wall_ms)


def test_https_phases_include_the_handshake_and_add_up(https_server) -> None:
    server = https_server()

    outcome, wall_ms = timed(ProbeSpec(server.url(), policy=LOCAL, ca_pem=server.ca_pem, timeout=5))

    assert outcome.success is True, outcome.error
    assert list(outcome.phases) == ["dns", "connect", "tls", "processing", "transfer"]
    assert all(seconds > 0 for seconds in outcome.phases.values())
    assert_adds_up(outcome, wall_ms)


def test_the_dns_phase_is_the_lookup(tcp_server, local_names) -> None:
    local_names.delay = 0.15
    server = tcp_server(slow_answer(think=0, drip=0))

    outcome, wall_ms = timed(ProbeSpec(f"http://app.lookout.test:{server.port}/", policy=LOCAL, timeout=5))

    assert outcome.success is True, outcome.error
    assert outcome.phases["dns"] == pytest.approx(0.15, abs=0.05)
    assert_adds_up(outcome, wall_ms)


def test_phases_of_a_redirect_chain_are_summed_over_the_hops_and_add_up(tcp_server) -> None:
    def hop(conn, server) -> None:
        request = read_request(conn)
        time.sleep(0.05)
        if request.startswith(b"GET /final"):
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        else:
            conn.sendall(b"HTTP/1.1 302 Found\r\nLocation: /final\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

    server = tcp_server(hop)

    outcome, wall_ms = timed(ProbeSpec(f"http://127.0.0.1:{server.port}/start", policy=LOCAL, timeout=5))

    assert outcome.success is True, outcome.error
    assert server.connections == 2
    assert outcome.phases["processing"] == pytest.approx(0.1, abs=0.04)  # two hops of 50 ms
    assert_adds_up(outcome, wall_ms)


def test_a_probe_that_times_out_still_reports_phases_that_add_up(tcp_server) -> None:
    server = tcp_server(lambda conn, server: server.stop.wait(5))

    outcome, wall_ms = timed(ProbeSpec(f"http://127.0.0.1:{server.port}/", policy=LOCAL, timeout=0.5))

    assert outcome.error == "timed out after 0.5s"
    assert outcome.phases["processing"] == pytest.approx(0.5, abs=0.05)
    assert "transfer" not in outcome.phases
    assert_adds_up(outcome, wall_ms)


def test_tcp_phases_are_dns_and_connect_then_the_exchange(tcp_server) -> None:
    def banner_later(conn, server) -> None:
        conn.recv(100)
        time.sleep(0.1)
        conn.sendall(b"pong\n")

    server = tcp_server(banner_later)

    connect_only, connect_wall = timed(ProbeSpec(f"tcp://127.0.0.1:{server.port}", type="tcp", policy=LOCAL))
    exchange, exchange_wall = timed(ProbeSpec(f"tcp://127.0.0.1:{server.port}", type="tcp", policy=LOCAL,
                                              send=b"ping\n", expect=b"pong"))

    assert list(connect_only.phases) == ["dns", "connect"]
    assert_adds_up(connect_only, connect_wall)
    assert exchange.success is True, exchange.error
    assert list(exchange.phases) == ["dns", "connect", "processing", "transfer"]
    assert exchange.phases["processing"] == pytest.approx(0.1, abs=0.04)
    assert_adds_up(exchange, exchange_wall)


def test_a_dns_probe_is_all_dns_phase(dns_server) -> None:
    dns_server.delay = 0.1
    policy = TargetPolicy(allowlist=(ipaddress.ip_network("127.0.0.1/32"),))

    outcome, wall_ms = timed(ProbeSpec(f"dns://{dns_server.address}/public.lookout.test", type="dns",
                                       policy=policy, timeout=5))

    assert outcome.success is True, outcome.error
    assert list(outcome.phases) == ["dns"]
    assert outcome.phases["dns"] == pytest.approx(0.1, abs=0.05)
    assert_adds_up(outcome, wall_ms)
