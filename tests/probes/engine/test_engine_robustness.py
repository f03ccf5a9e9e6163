"""Hostile or broken targets: each ends as a recorded failure (or a capped success) within the deadline,
with bounded memory, and never as an exception."""

from __future__ import annotations

import gzip
import socket
import struct
import time
import tracemalloc

import pytest
from probe_servers import read_request

from lookout.probes.engine import DEFAULT_MAX_BODY_BYTES, Outcome, ProbeSpec, TargetPolicy, probe

LOCAL = TargetPolicy(allow_private=True)
GIB = 1024 ** 3


def answering(raw: bytes, then_close: bool = True):
    def handler(conn: socket.socket, server) -> None:
        read_request(conn)
        conn.sendall(raw)
        if not then_close:
            server.stop.wait(10)
    return handler


def timed_probe(url: str, **options) -> tuple[Outcome, float]:
    start = time.perf_counter()
    outcome = probe(ProbeSpec(url, policy=LOCAL, **{"timeout": 3.0, **options}))
    return outcome, time.perf_counter() - start


def test_a_gigabyte_stream_is_read_to_the_cap_and_judged_on_that_with_bounded_memory(tcp_server) -> None:
    def gigabyte(conn, server) -> None:
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % GIB)
        block = b"healthy " * 8192
        for _ in range(GIB // len(block)):
            conn.sendall(block)

    server = tcp_server(gigabyte)
    tracemalloc.start()
    try:
        outcome, elapsed = timed_probe(f"http://127.0.0.1:{server.port}/", keyword="healthy")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert outcome.success is True, outcome.error
    assert elapsed < 2
    assert peak < 8 * DEFAULT_MAX_BODY_BYTES  # the 1 MiB read, a few copies of it at most


def test_a_gzip_bomb_is_decompressed_only_up_to_the_cap(tcp_server) -> None:
    bomb = gzip.compress(b"\0" * (256 * 1024 * 1024), compresslevel=9)  # 256 MiB in about 250 kB
    server = tcp_server(answering(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n"
                                  b"Connection: close\r\n\r\n%s" % (len(bomb), bomb)))
    tracemalloc.start()
    try:
        outcome, elapsed = timed_probe(f"http://127.0.0.1:{server.port}/", keyword="ok")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert outcome.error == "keyword 'ok' not found in the first 1048576 bytes"
    assert peak < 8 * DEFAULT_MAX_BODY_BYTES
    assert elapsed < 2


def test_headers_dripped_one_byte_at_a_time_fail_at_the_total_deadline(tcp_server) -> None:
    def drip(conn, server) -> None:
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\n")
        while not server.stop.wait(0.05):
            conn.sendall(b"X")  # one endless header line, a byte every 50 ms

    server = tcp_server(drip)

    outcome, elapsed = timed_probe(f"http://127.0.0.1:{server.port}/", timeout=1.0)

    assert outcome.error == "timed out after 1.0s"
    assert elapsed < 1.3


def test_a_redirect_loop_fails_as_too_many_redirects_quickly(tcp_server) -> None:
    server = tcp_server(answering(b"HTTP/1.1 301 Moved\r\nLocation: /loop\r\nContent-Length: 0\r\n\r\n"))

    outcome, elapsed = timed_probe(f"http://127.0.0.1:{server.port}/loop")

    assert outcome.error == "too many redirects (more than 5)"
    assert outcome.status_code == 301
    assert server.connections == 6
    assert elapsed < 1


@pytest.mark.parametrize(("raw", "error"), [
    (b"HELLO WORLD\r\n\r\n", "malformed response: invalid status line 'HELLO WORLD\\r\\n'"),
    (b"HTTP/1.1 2OO OK\r\n\r\n", "malformed response: invalid status line 'HTTP/1.1 2OO OK\\r\\n'"),
    (b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03binary\r\n", "malformed response: invalid status line"),
    (b"HTTP/1.1 200 OK\r\nX-Long: " + b"a" * 70000 + b"\r\n\r\n", "malformed response: a header line is too long"),
    (b"HTTP/1.1 200 OK\r\n" + b"X-Many: 1\r\n" * 150 + b"\r\n", "malformed response: got more than 100 headers"),
    (b"", "server closed the connection without sending a response"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this",
     "connection closed before the whole body was received"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nbad\r\n", "malformed response: invalid chunk size"),
])
def test_a_malformed_response_is_a_failure_with_a_clear_error(tcp_server, raw: bytes, error: str) -> None:
    server = tcp_server(answering(raw))

    outcome, elapsed = timed_probe(f"http://127.0.0.1:{server.port}/")

    assert outcome.success is False
    assert outcome.error.startswith(error)
    assert elapsed < 1


def test_a_connection_reset_is_a_failure(tcp_server) -> None:
    def reset(conn, server) -> None:
        read_request(conn)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = RST

    server = tcp_server(reset)

    outcome, _ = timed_probe(f"http://127.0.0.1:{server.port}/")

    assert outcome.error == "connection reset by peer"


def test_a_reset_in_the_middle_of_the_body_is_a_failure_with_the_status(tcp_server) -> None:
    def reset(conn, server) -> None:
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n" + b"x" * 1000)
        time.sleep(0.05)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    server = tcp_server(reset)

    outcome, _ = timed_probe(f"http://127.0.0.1:{server.port}/")

    assert outcome.status_code == 200
    assert outcome.error == "connection reset by peer"


def test_invalid_utf8_does_not_break_conditions(tcp_server) -> None:
    body = b'\xff\xfe{"status": "UP"} caf\xc3'
    server = tcp_server(answering(b"HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\n"
                                  b"Content-Length: %d\r\n\r\n%s" % (len(body), body)))

    outcome, _ = timed_probe(f"http://127.0.0.1:{server.port}/",
                             conditions=('[BODY] contains "UP"', '[BODY].status == "UP"'))

    assert outcome.failed_condition == '[BODY].status == "UP"'
    assert outcome.error == 'condition failed: [BODY].status == "UP" (the body is not JSON)'


def test_a_body_in_a_declared_legacy_charset_is_decoded_with_it(tcp_server) -> None:
    body = "Größe: grün".encode("latin-1")
    server = tcp_server(answering(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=ISO-8859-1\r\n"
                                  b"Content-Length: %d\r\n\r\n%s" % (len(body), body)))

    outcome, _ = timed_probe(f"http://127.0.0.1:{server.port}/", conditions=('[BODY] contains "grün"',))

    assert outcome.success is True, outcome.error


def test_many_hostile_probes_at_once_all_end_within_the_deadline(tcp_server) -> None:
    # A worker probes many targets at once; one bad target must not delay the others past their deadlines.
    import threading

    def hang(conn, server) -> None:
        server.stop.wait(10)

    server = tcp_server(hang)
    outcomes: list[Outcome] = []
    threads = [threading.Thread(target=lambda: outcomes.append(
        probe(ProbeSpec(f"http://127.0.0.1:{server.port}/", policy=LOCAL, timeout=0.5)))) for _ in range(30)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert time.perf_counter() - start < 1.2
    assert [outcome.error for outcome in outcomes] == ["timed out after 0.5s"] * 30
