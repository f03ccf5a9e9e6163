"""HTTP probe options beyond the basics (auth, body, redirects off, IP version) and conditions in a probe."""

from __future__ import annotations

import base64
import json
import socket

from probe_servers import read_request

from lookout.probes.engine import ProbeSpec, TargetPolicy, probe

LOCAL = TargetPolicy(allow_private=True)


def recording(status: int = 200, body: bytes = b"ok", headers: dict[str, str] | None = None):
    """A handler that answers the same thing every time and keeps every request head it read."""
    seen: list[bytes] = []

    def handler(conn: socket.socket, server) -> None:
        request = read_request(conn)
        head, _, rest = request.partition(b"\r\n\r\n")
        length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)
        while len(rest) < length:
            rest += conn.recv(4096)
        seen.append(head + b"\r\n\r\n" + rest)
        extra = "".join(f"{key}: {value}\r\n" for key, value in (headers or {}).items())
        conn.sendall(f"HTTP/1.1 {status} X\r\n{extra}Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
                     .encode() + body)

    handler.seen = seen  # type: ignore[attr-defined]
    return handler


def test_basic_auth_and_a_request_body_reach_the_server(tcp_server) -> None:
    handler = recording()
    server = tcp_server(handler)

    outcome = probe(ProbeSpec(f"http://127.0.0.1:{server.port}/hook", method="POST", body=b'{"ping": 1}',
                              headers={"Content-Type": "application/json"}, basic_auth=("probe", "s3cret"),
                              policy=LOCAL, timeout=5))

    assert outcome.success is True, outcome.error
    request = handler.seen[0]
    assert request.startswith(b"POST /hook HTTP/1.1\r\n")
    assert b"Authorization: Basic " + base64.b64encode(b"probe:s3cret") + b"\r\n" in request
    assert b"Content-Length: 11\r\n" in request
    assert request.endswith(b'{"ping": 1}')


def test_basic_auth_is_not_sent_across_a_redirect_to_another_host(tcp_server) -> None:
    elsewhere = recording()
    other = tcp_server(elsewhere, host="127.0.0.2")
    server = tcp_server(recording(status=302, headers={"Location": f"http://127.0.0.2:{other.port}/"}))

    outcome = probe(ProbeSpec(f"http://127.0.0.1:{server.port}/", basic_auth=("probe", "s3cret"), policy=LOCAL,
                              timeout=5))

    assert outcome.success is True, outcome.error
    assert b"Authorization" not in elsewhere.seen[0]


def test_with_redirects_off_the_redirect_is_the_answer(tcp_server) -> None:
    server = tcp_server(recording(status=302, headers={"Location": "/elsewhere"}))

    as_is = probe(ProbeSpec(f"http://127.0.0.1:{server.port}/", follow_redirects=False, policy=LOCAL, timeout=5))
    wanted_200 = probe(ProbeSpec(f"http://127.0.0.1:{server.port}/", follow_redirects=False,
                                 expected_status=(200,), policy=LOCAL, timeout=5))

    assert as_is.success is True and as_is.status_code == 302
    assert wanted_200.error == "unexpected status 302 (expected 200)"
    assert server.connections == 2  # one request per probe: nothing was followed


def test_a_status_condition_replaces_the_default_2xx_3xx_rule(tcp_server) -> None:
    server = tcp_server(recording(status=503, body=b"maintenance"))

    expected_503 = probe(ProbeSpec(f"http://127.0.0.1:{server.port}/", conditions=("[STATUS] == 503",),
                                   policy=LOCAL, timeout=5))
    default_rule = probe(ProbeSpec(f"http://127.0.0.1:{server.port}/", conditions=('[BODY] contains "main"',),
                                   policy=LOCAL, timeout=5))

    assert expected_503.success is True, expected_503.error
    assert default_rule.error == "unexpected status 503 (expected 2xx/3xx)"
    assert default_rule.failed_condition is None


def test_the_first_failing_condition_is_recorded_with_what_was_there(tcp_server) -> None:
    body = json.dumps({"status": "DEGRADED", "checks": [{"db": "ok"}]}).encode()
    server = tcp_server(recording(body=body, headers={"Content-Type": "application/json"}))
    conditions = ("[STATUS] < 400", '[HEADER].content-type contains "json"', "[RESPONSE_TIME] < 10s",
                  '[BODY].checks[0].db == "ok"', '[BODY].status == "UP"', '[BODY] contains "never checked"')

    outcome = probe(ProbeSpec(f"http://127.0.0.1:{server.port}/", conditions=conditions, policy=LOCAL, timeout=5))

    assert outcome.success is False
    assert outcome.status_code == 200
    assert outcome.failed_condition == '[BODY].status == "UP"'
    assert outcome.error == "condition failed: [BODY].status == \"UP\" (value was 'DEGRADED')"


def test_all_conditions_holding_is_a_success(tcp_server) -> None:
    server = tcp_server(recording(body=b'{"status": "UP"}', headers={"Content-Type": "application/json"}))

    outcome = probe(ProbeSpec(f"http://127.0.0.1:{server.port}/", policy=LOCAL, timeout=5, conditions=(
        "[STATUS] == 200", '[BODY].status == "UP"', '[HEADER].Content-Type contains "json"', "[RESPONSE_TIME] < 5s")))

    assert outcome.success is True, outcome.error
    assert outcome.failed_condition is None


def test_a_keyword_failure_comes_before_the_conditions(tcp_server) -> None:
    server = tcp_server(recording(body=b"ok"))

    outcome = probe(ProbeSpec(f"http://127.0.0.1:{server.port}/", keyword="healthy", conditions=("[STATUS] == 201",),
                              policy=LOCAL, timeout=5))

    assert outcome.error == "keyword 'healthy' not found in the first 1048576 bytes"
    assert outcome.failed_condition is None


def test_an_invalid_condition_in_a_spec_is_a_failure_naming_it(tcp_server) -> None:
    server = tcp_server(recording())

    outcome = probe(ProbeSpec(f"http://127.0.0.1:{server.port}/", conditions=("[STATUS] === 200",), policy=LOCAL,
                              timeout=5))

    assert outcome.failed_condition == "[STATUS] === 200"
    assert outcome.error.startswith("invalid condition '[STATUS] === 200': ")


def test_ip_version_picks_the_address_family(tcp_server, local_names) -> None:
    server = tcp_server(recording(), host="::1")  # app.lookout.test has 127.0.0.1 and ::1

    ipv6 = probe(ProbeSpec(f"http://app.lookout.test:{server.port}/", ip_version=6, policy=LOCAL, timeout=5))
    ipv4 = probe(ProbeSpec(f"http://app.lookout.test:{server.port}/", ip_version=4, policy=LOCAL, timeout=5))

    assert ipv6.success is True, ipv6.error
    assert ipv4.error == "connection refused"  # nothing listens on 127.0.0.1 at that port


def test_proxy_variables_of_the_worker_are_ignored(tcp_server, monkeypatch) -> None:
    # A proxy would make the address checked differ from the address reached.
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    server = tcp_server(recording())

    assert probe(ProbeSpec(f"http://127.0.0.1:{server.port}/", policy=LOCAL, timeout=5)).success is True


def test_an_unknown_probe_type_is_a_failure() -> None:
    outcome = probe(ProbeSpec("https://example.com/", type="push"))

    assert outcome.error == "unsupported probe type 'push' (one of http, tcp, dns)"
