"""A plain-http GET or HEAD goes out over http.client directly (its first hop): what the target sees and what
the probe reports are as through requests, redirects included."""

from __future__ import annotations

import base64

import requests
from probe_servers import read_request

from lookout.probes.engine import USER_AGENT, ProbeSpec, TargetPolicy, probe

LOCAL = TargetPolicy(allow_private=True)


def answering(*answers: bytes):
    """A handler giving each connection the next answer; keeps every request head."""
    seen: list[bytes] = []

    def handler(conn, server) -> None:
        seen.append(read_request(conn))
        conn.sendall(answers[min(len(seen), len(answers)) - 1])

    handler.seen = seen  # type: ignore[attr-defined]
    return handler


def test_the_request_head_is_the_one_requests_sends(tcp_server) -> None:
    handler = answering(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
    server = tcp_server(handler)

    outcome = probe(ProbeSpec(f"http://127.0.0.1:{server.port}/path?q=1", policy=LOCAL, timeout=5,
                              basic_auth=("probe", "s3cret"), headers={"X-Extra": "1"}))

    assert outcome.success is True, outcome.error
    head = handler.seen[0].split(b"\r\n\r\n")[0].decode().split("\r\n")
    token = base64.b64encode(b"probe:s3cret").decode()
    defaults = requests.utils.default_headers()
    assert head == [
        "GET /path?q=1 HTTP/1.1", f"Host: 127.0.0.1:{server.port}", f"User-Agent: {USER_AGENT}",
        f"Accept-Encoding: {defaults['Accept-Encoding']}", "Accept: */*", "Connection: keep-alive", "X-Extra: 1",
        f"Authorization: Basic {token}",
    ]


def test_a_cookie_set_by_the_first_hop_reaches_the_next(tcp_server) -> None:
    final = answering(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\ndone")
    target = tcp_server(final)
    first = tcp_server(answering(
        f"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:{target.port}/next\r\nSet-Cookie: session=abc; Path=/\r\n"
        "Content-Length: 0\r\nConnection: close\r\n\r\n".encode()))

    outcome = probe(ProbeSpec(f"http://127.0.0.1:{first.port}/", policy=LOCAL, timeout=5, keyword="done"))

    assert (outcome.success, outcome.status_code) == (True, 200), outcome.error
    assert b"Cookie: session=abc" in final.seen[0]
    assert set(outcome.phases) >= {"dns", "connect", "processing", "transfer"}


def test_a_head_probe_reads_no_body(tcp_server) -> None:
    handler = answering(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n")
    server = tcp_server(handler)

    outcome = probe(ProbeSpec(f"http://127.0.0.1:{server.port}/", method="HEAD", policy=LOCAL, timeout=5))

    assert (outcome.success, outcome.status_code) == (True, 200), outcome.error
    assert handler.seen[0].startswith(b"HEAD / HTTP/1.1\r\n")
