"""TLS facts and verification, against HTTPS servers on loopback with certificates made for each test."""

from __future__ import annotations

import datetime as dt
import re
import socket
import time

import pytest
from probe_servers import read_request

from lookout.probes.engine import ProbeSpec, TargetPolicy, probe

LOCAL = TargetPolicy(allow_private=True)
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


def days_until(moment: dt.datetime) -> float:
    # From now, not from NOW: the module is imported at collection, minutes before a long session runs it.
    return (moment - dt.datetime.now(dt.UTC)).total_seconds() / 86400


def test_a_valid_certificate_is_verified_and_its_facts_are_exact(https_server) -> None:
    server = https_server(not_before=NOW - dt.timedelta(days=3), not_after=NOW + dt.timedelta(days=45))

    outcome = probe(ProbeSpec(server.url(), policy=LOCAL, ca_pem=server.ca_pem, timeout=5))

    assert outcome.success is True, outcome.error
    assert outcome.status_code == 200
    facts = outcome.tls
    assert facts is not None
    assert facts.not_after == server.not_after
    assert facts.not_before == server.not_before
    assert facts.not_after.tzinfo is not None
    assert facts.days_left == pytest.approx(days_until(server.not_after), abs=0.01)
    assert "O=Lookout Test CA" in facts.issuer
    assert facts.subject  # trustme leaves the subject nearly empty; it is read, whatever it is
    assert facts.version in ("TLSv1.2", "TLSv1.3")
    assert facts.verified is True
    assert set(outcome.phases) == {"dns", "connect", "tls", "processing", "transfer"}


def test_an_expired_certificate_fails_with_a_clear_error_and_its_facts_are_still_read(https_server) -> None:
    expired = NOW - dt.timedelta(days=2)
    server = https_server(not_before=NOW - dt.timedelta(days=90), not_after=expired)

    outcome = probe(ProbeSpec(server.url(), policy=LOCAL, ca_pem=server.ca_pem, timeout=5))

    assert outcome.success is False
    assert outcome.status_code is None
    assert outcome.error == (f"SSL error: certificate verify failed: certificate has expired "
                             f"(expired {expired:%Y-%m-%d %H:%M} UTC)")
    assert outcome.tls is not None
    assert outcome.tls.not_after == expired
    assert outcome.tls.days_left == pytest.approx(days_until(expired), abs=0.01)
    assert outcome.tls.verified is False
    assert server.hits == []  # no request was sent over the unverified connection


def test_with_verify_tls_off_an_expired_certificate_is_a_success_with_facts(https_server) -> None:
    server = https_server(not_before=NOW - dt.timedelta(days=30), not_after=NOW - dt.timedelta(days=1))

    outcome = probe(ProbeSpec(server.url(), policy=LOCAL, verify_tls=False, timeout=5))  # not even the CA

    assert outcome.success is True, outcome.error
    assert outcome.tls is not None
    assert outcome.tls.not_after == server.not_after
    assert outcome.tls.days_left < 0
    assert outcome.tls.verified is False


def test_a_certificate_from_an_unknown_ca_fails_verification_with_facts(https_server) -> None:
    server = https_server()

    outcome = probe(ProbeSpec(server.url(), policy=LOCAL, timeout=5))  # certifi's bundle: no test CA in it

    assert outcome.success is False
    assert outcome.error == "SSL error: certificate verify failed: unable to get local issuer certificate"
    assert outcome.tls is not None and outcome.tls.not_after == server.not_after


def test_a_certificate_for_another_name_fails_verification(https_server) -> None:
    server = https_server(identities=("other.example",))

    outcome = probe(ProbeSpec(server.url(), policy=LOCAL, ca_pem=server.ca_pem, timeout=5))

    assert outcome.success is False
    assert outcome.error.startswith("SSL error: certificate verify failed: IP address mismatch")
    assert outcome.tls is not None


def test_the_host_name_is_kept_for_sni_verification_and_host_while_the_checked_ip_is_dialled(
        https_server, local_names) -> None:
    # The certificate is only valid for app.lookout.test, which only the test's DNS server knows.
    server = https_server(identities=("app.lookout.test",))

    outcome = probe(ProbeSpec(server.url(host="app.lookout.test"), policy=LOCAL, ca_pem=server.ca_pem, timeout=5))

    assert outcome.success is True, outcome.error
    assert outcome.tls is not None and outcome.tls.verified is True
    assert server.hits == [f"app.lookout.test:{server.port}"]
    assert ("app.lookout.test", "A") in local_names.queries


def test_https_over_ipv6(https_server) -> None:
    server = https_server(identities=("::1",), host="::1")

    outcome = probe(ProbeSpec(server.url(host="[::1]"), policy=LOCAL, ca_pem=server.ca_pem, timeout=5))

    assert outcome.success is True, outcome.error
    assert outcome.tls is not None and outcome.tls.verified is True


def test_a_server_that_never_completes_the_handshake_fails_at_the_deadline(tcp_server) -> None:
    def silent(conn, server) -> None:  # accepts, reads the ClientHello, answers nothing
        conn.recv(4096)
        server.stop.wait(10)

    server = tcp_server(silent)
    start = time.perf_counter()

    outcome = probe(ProbeSpec(f"https://127.0.0.1:{server.port}/", policy=LOCAL, timeout=1.0))

    assert outcome.success is False
    assert outcome.error == "timed out after 1.0s"
    assert time.perf_counter() - start < 1.3
    assert outcome.phases["tls"] == pytest.approx(1.0, abs=0.1)


def test_a_handshake_dripped_one_byte_at_a_time_still_ends_at_the_deadline(tcp_server, https_server) -> None:
    # A real ServerHello, forwarded one byte every 50 ms: every read makes progress, only a total deadline ends it.
    backend = https_server()

    def drip(conn, server) -> None:
        upstream = socket.create_connection(("127.0.0.1", backend.port))
        upstream.sendall(conn.recv(4096))
        while not server.stop.is_set():
            byte = upstream.recv(1)
            if not byte:
                return
            conn.sendall(byte)
            time.sleep(0.05)

    server = tcp_server(drip)
    start = time.perf_counter()

    outcome = probe(ProbeSpec(f"https://127.0.0.1:{server.port}/", policy=LOCAL, ca_pem=backend.ca_pem,
                              timeout=1.0))

    assert outcome.error == "timed out after 1.0s"
    assert time.perf_counter() - start < 1.3


def test_a_certificate_expiration_condition_uses_the_certificate(https_server) -> None:
    server = https_server(not_after=NOW + dt.timedelta(hours=30))
    spec = ProbeSpec(server.url(), policy=LOCAL, ca_pem=server.ca_pem, timeout=5)

    holds = probe(ProbeSpec(**{**spec.__dict__, "conditions": ("[CERTIFICATE_EXPIRATION] > 24h",)}))
    fails = probe(ProbeSpec(**{**spec.__dict__, "conditions": ("[CERTIFICATE_EXPIRATION] > 48h",)}))

    assert holds.success is True, holds.error
    assert fails.success is False
    assert fails.failed_condition == "[CERTIFICATE_EXPIRATION] > 48h"
    # The certificate is made once per session (30 h of life), so minutes of test run may round it to 29.9 h.
    assert re.match(r"condition failed: \[CERTIFICATE_EXPIRATION\] > 48h \(certificate expires in (29\.\d|30\.0)h",
                    fails.error), fails.error


def test_a_certificate_expiration_condition_fails_without_tls(tcp_server) -> None:
    def plain(conn, server) -> None:
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")

    server = tcp_server(plain)

    outcome = probe(ProbeSpec(f"http://127.0.0.1:{server.port}/", policy=LOCAL, timeout=5,
                              conditions=("[CERTIFICATE_EXPIRATION] > 1d",)))

    assert outcome.success is False
    assert outcome.error == "condition failed: [CERTIFICATE_EXPIRATION] > 1d (there was no certificate)"
