"""Pins down the probe engine against real HTTP servers on 127.0.0.1 (no traffic leaves the machine)."""

from __future__ import annotations

import functools
import gzip
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from lookout import __version__
from lookout.probes.engine import (
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_REDIRECTS,
    USER_AGENT,
    Outcome,
    ProbeSpec,
    TargetPolicy,
    probe,
    region_user_agent,
)

MIB = 1024 * 1024
# These servers listen on 127.0.0.1, which the default target policy refuses (see test_targets.py).
Spec = functools.partial(ProbeSpec, policy=TargetPolicy(allow_private=True))


@dataclass
class Seen:
    method: str
    path: str
    headers: list[tuple[str, str]]

    def header_values(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key.lower() == name.lower()]


@dataclass
class Server:
    base_url: str
    seen: list[Seen] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def url(self, path: str) -> str:
        return self.base_url + path


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    lookout: Server

    def handle_error(self, request: Any, client_address: Any) -> None:
        # The engine hangs up on purpose (body cap, deadline); the resulting broken pipes are expected.
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _QuietServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        state = self.server.lookout
        state.seen.append(Seen(self.command, self.path, list(self.headers.items())))
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.close_connection = True
        parts = urlsplit(self.path)
        route, _, arg = parts.path.strip("/").partition("/")
        query = {key: values[0] for key, values in parse_qs(parts.query).items()}
        getattr(self, f"route_{route.replace('-', '_')}")(arg, query)

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _wait(self, seconds: float) -> None:
        # Waiting on the stop event instead of sleeping lets teardown release stuck handlers at once.
        self.server.lookout.stop.wait(seconds)

    def route_ok(self, arg: str, query: dict[str, str]) -> None:
        self._send(200, b"<html>all systems ok</html>")

    def route_status(self, arg: str, query: dict[str, str]) -> None:
        status = int(arg)
        self._send(status, b"" if status == 304 else b"status page")

    def route_body(self, arg: str, query: dict[str, str]) -> None:
        self._send(200, query["text"].encode("utf-8"))

    def route_bytes(self, arg: str, query: dict[str, str]) -> None:
        # Some valid text around invalid UTF-8, like a page in a legacy encoding.
        self._send(200, b"\xff\xfe caf\xc3\xa9 \xe9t\xe9 healthy \xc3")

    def route_padded(self, arg: str, query: dict[str, str]) -> None:
        # arg bytes of filler, then the needle
        self._send(200, b"a" * int(arg) + b"needle")

    def route_big(self, arg: str, query: dict[str, str]) -> None:
        size = int(arg)
        self.send_response(200)
        self.send_header("Content-Length", str(size))
        self.send_header("Connection", "close")
        self.end_headers()
        block = b"healthy " * 8192
        sent = 0
        while sent < size:
            piece = block[: size - sent]
            self.wfile.write(piece)
            sent += len(piece)

    def route_endless(self, arg: str, query: dict[str, str]) -> None:
        # No Content-Length: the body only ends when the connection closes, which we never do.
        self.send_response(200)
        self.send_header("Connection", "close")
        self.end_headers()
        block = b"healthy " * 8192
        while not self.server.lookout.stop.is_set():
            self.wfile.write(block)

    def route_gzip(self, arg: str, query: dict[str, str]) -> None:
        self._send(200, gzip.compress(b"compressed but healthy"), {"Content-Encoding": "gzip"})

    def route_chunked(self, arg: str, query: dict[str, str]) -> None:
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Connection", "close")
        self.end_headers()
        for piece in (b"first chunk, ", b"second chunk: healthy"):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        self.wfile.write(b"0\r\n\r\n")

    def route_redirect(self, arg: str, query: dict[str, str]) -> None:
        hops = int(arg)
        time.sleep(float(query.get("delay", 0)))
        if hops == 0:
            self._send(200, b"landed")
        else:
            location = f"/redirect/{hops - 1}?{urlsplit(self.path).query}"
            self._send(302, b"moved", {"Location": location})

    def route_stuck_redirect(self, arg: str, query: dict[str, str]) -> None:
        # A redirect whose body promises 100 kB and then never comes.
        self.send_response(302)
        self.send_header("Location", "/ok")
        self.send_header("Content-Length", "100000")
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(b"moved")
        self.wfile.flush()
        self._wait(30)

    def route_hang(self, arg: str, query: dict[str, str]) -> None:
        self._wait(30)

    def route_drip(self, arg: str, query: dict[str, str]) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "1000")
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.flush()
        for _ in range(1000):
            self.wfile.write(b"x")
            self.wfile.flush()
            if self.server.lookout.stop.wait(0.3):
                return

    def route_late_then_stall(self, arg: str, query: dict[str, str]) -> None:
        self._wait(float(query["delay"]))
        self.send_response(200)
        self.send_header("Content-Length", "1000")
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(b"partial")
        self.wfile.flush()
        self._wait(30)


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # requests honours proxy variables; a proxy would take our loopback traffic off the machine.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server() -> Iterator[Server]:
    httpd = _QuietServer(("127.0.0.1", 0), _Handler)
    host, port = httpd.server_address[:2]
    state = Server(base_url=f"http://{host}:{port}")
    httpd.lookout = state
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.stop.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def timed_probe(spec: ProbeSpec) -> tuple[Outcome, float]:
    start = time.perf_counter()
    outcome = probe(spec)
    return outcome, time.perf_counter() - start


def assert_failed(outcome: Outcome) -> None:
    assert outcome.success is False
    assert outcome.error
    assert len(outcome.error) <= 500


# --- status --------------------------------------------------------------------------------------


def test_a_200_target_is_a_success_with_its_status_and_time(server: Server) -> None:
    before = datetime.now(UTC)

    outcome, elapsed = timed_probe(Spec(server.url("/ok"), timeout=5))

    assert outcome.success is True
    assert outcome.status_code == 200
    assert outcome.error == ""
    assert 0 < outcome.response_time_ms <= elapsed * 1000
    assert outcome.started_at.tzinfo is not None
    assert outcome.started_at.utcoffset() == timedelta(0)
    assert before <= outcome.started_at <= before + timedelta(seconds=elapsed + 1)


def test_a_503_target_is_a_failure_with_its_status(server: Server) -> None:
    outcome = probe(Spec(server.url("/status/503"), timeout=5))

    assert_failed(outcome)
    assert outcome.status_code == 503
    assert outcome.error == "unexpected status 503 (expected 2xx/3xx)"


def test_a_3xx_without_location_counts_as_up_by_default(server: Server) -> None:
    outcome = probe(Spec(server.url("/status/304"), timeout=5))

    assert outcome.success is True
    assert outcome.status_code == 304


def test_a_status_in_the_expected_list_is_a_success(server: Server) -> None:
    outcome = probe(Spec(server.url("/status/404"), timeout=5, expected_status=(404, 410)))

    assert outcome.success is True
    assert outcome.status_code == 404


def test_a_status_outside_the_expected_list_is_a_failure_naming_the_list(server: Server) -> None:
    outcome = probe(Spec(server.url("/status/404"), timeout=5, expected_status=(200, 204)))

    assert_failed(outcome)
    assert outcome.status_code == 404
    assert outcome.error == "unexpected status 404 (expected 200, 204)"


def test_an_expected_list_replaces_the_default_2xx_3xx_rule(server: Server) -> None:
    outcome = probe(Spec(server.url("/ok"), timeout=5, expected_status=(204,)))

    assert_failed(outcome)
    assert outcome.error == "unexpected status 200 (expected 204)"


def test_a_huge_expected_list_still_gives_an_error_of_at_most_500_chars(server: Server) -> None:
    outcome = probe(Spec(server.url("/status/404"), timeout=5, expected_status=tuple(range(200, 400))))

    assert_failed(outcome)
    assert outcome.error.startswith("unexpected status 404 (expected 200, 201,")


# --- keyword -------------------------------------------------------------------------------------


def test_a_keyword_present_in_the_body_is_a_success(server: Server) -> None:
    outcome = probe(Spec(server.url("/ok"), timeout=5, keyword="systems ok"))

    assert outcome.success is True
    assert outcome.error == ""


def test_a_missing_keyword_is_a_failure_that_names_it(server: Server) -> None:
    outcome = probe(Spec(server.url("/ok"), timeout=5, keyword="degraded"))

    assert_failed(outcome)
    assert outcome.status_code == 200
    assert outcome.error == "keyword 'degraded' not found in the first 1048576 bytes"


def test_a_non_ascii_keyword_is_found_in_a_body_with_invalid_utf8_around_it(server: Server) -> None:
    assert probe(Spec(server.url("/bytes"), timeout=5, keyword="café")).success is True
    assert probe(Spec(server.url("/bytes"), timeout=5, keyword="healthy")).success is True


def test_a_keyword_is_matched_against_the_decompressed_body(server: Server) -> None:
    outcome = probe(Spec(server.url("/gzip"), timeout=5, keyword="but healthy"))

    assert outcome.success is True


def test_a_keyword_is_found_across_a_chunked_body(server: Server) -> None:
    outcome = probe(Spec(server.url("/chunked"), timeout=5, keyword="second chunk: healthy"))

    assert outcome.success is True


def test_a_keyword_just_inside_the_body_cap_is_found(server: Server) -> None:
    outcome = probe(Spec(server.url(f"/padded/{DEFAULT_MAX_BODY_BYTES - 6}"), timeout=5, keyword="needle"))

    assert outcome.success is True


def test_a_keyword_beyond_the_body_cap_is_not_found(server: Server) -> None:
    outcome = probe(Spec(server.url(f"/padded/{DEFAULT_MAX_BODY_BYTES}"), timeout=5, keyword="needle"))

    assert_failed(outcome)
    assert outcome.error == "keyword 'needle' not found in the first 1048576 bytes"


def test_the_body_cap_is_configurable_per_spec(server: Server) -> None:
    outcome = probe(Spec(server.url("/padded/100"), timeout=5, keyword="needle", max_body_bytes=50))

    assert_failed(outcome)
    assert outcome.error == "keyword 'needle' not found in the first 50 bytes"


# --- body size -----------------------------------------------------------------------------------


def test_a_3_mib_body_is_a_success_read_only_up_to_the_cap(server: Server) -> None:
    outcome, elapsed = timed_probe(Spec(server.url(f"/big/{3 * MIB}"), timeout=5, keyword="healthy"))

    assert outcome.success is True
    assert outcome.status_code == 200
    assert elapsed < 5


def test_an_endless_body_is_a_success_because_reading_stops_at_the_cap(server: Server) -> None:
    # Were the engine to read to the end, this probe could only end by timing out.
    outcome, elapsed = timed_probe(Spec(server.url("/endless"), timeout=5, keyword="healthy"))

    assert outcome.success is True
    assert elapsed < 5


# --- request shape -------------------------------------------------------------------------------


def test_the_lookout_user_agent_reaches_the_server(server: Server) -> None:
    probe(Spec(server.url("/ok"), timeout=5))

    assert USER_AGENT == f"Lookout/{__version__} (uptime monitor)"
    assert server.seen[0].header_values("User-Agent") == [USER_AGENT]


def test_custom_headers_reach_the_server(server: Server) -> None:
    headers = {"X-Probe-Token": "s3cret", "Accept": "text/plain"}

    probe(Spec(server.url("/ok"), timeout=5, headers=headers))

    seen = server.seen[0]
    assert seen.header_values("X-Probe-Token") == ["s3cret"]
    assert seen.header_values("Accept") == ["text/plain"]
    assert seen.header_values("User-Agent") == [USER_AGENT]


def test_a_user_agent_header_in_the_spec_replaces_ours_whatever_its_case(server: Server) -> None:
    probe(Spec(server.url("/ok"), timeout=5, headers={"user-agent": "custom-agent/2"}))

    assert server.seen[0].header_values("User-Agent") == ["custom-agent/2"]


def test_a_region_s_probe_says_which_region_it_comes_from(server: Server) -> None:
    probe(Spec(server.url("/ok"), timeout=5, user_agent=region_user_agent("eu-west")))

    assert region_user_agent("eu-west") == f"Lookout/{__version__} (region eu-west)"
    assert server.seen[0].header_values("User-Agent") == [f"Lookout/{__version__} (region eu-west)"]


def test_the_region_s_user_agent_is_kept_across_a_redirect(server: Server) -> None:
    probe(Spec(server.url("/redirect/1"), timeout=5, user_agent=region_user_agent("ap-south")))

    assert [seen.header_values("User-Agent") for seen in server.seen] == [[region_user_agent("ap-south")]] * 2


def test_a_user_agent_header_in_the_spec_wins_over_the_region_s(server: Server) -> None:
    probe(Spec(server.url("/ok"), timeout=5, user_agent=region_user_agent("eu-west"),
               headers={"User-Agent": "custom-agent/3"}))

    assert server.seen[0].header_values("User-Agent") == ["custom-agent/3"]


def test_the_spec_method_is_used(server: Server) -> None:
    outcome = probe(Spec(server.url("/ok"), method="post", timeout=5))

    assert outcome.success is True
    assert [seen.method for seen in server.seen] == ["POST"]


def test_a_head_probe_succeeds_without_a_body(server: Server) -> None:
    outcome = probe(Spec(server.url("/ok"), method="HEAD", timeout=5))

    assert outcome.success is True
    assert [seen.method for seen in server.seen] == ["HEAD"]


# --- redirects -----------------------------------------------------------------------------------


def test_a_chain_of_5_redirects_is_followed_to_the_final_status(server: Server) -> None:
    outcome = probe(Spec(server.url(f"/redirect/{DEFAULT_MAX_REDIRECTS}"), timeout=5, keyword="landed"))

    assert outcome.success is True
    assert outcome.status_code == 200
    assert len(server.seen) == DEFAULT_MAX_REDIRECTS + 1


def test_a_chain_of_6_redirects_fails_as_too_many_redirects(server: Server) -> None:
    outcome = probe(Spec(server.url(f"/redirect/{DEFAULT_MAX_REDIRECTS + 1}"), timeout=5))

    assert_failed(outcome)
    assert outcome.error == "too many redirects (more than 5)"
    assert outcome.status_code == 302


def test_the_redirect_limit_is_configurable_per_spec(server: Server) -> None:
    outcome = probe(Spec(server.url("/redirect/2"), timeout=5, max_redirects=1))

    assert_failed(outcome)
    assert outcome.error == "too many redirects (more than 1)"


def test_a_redirect_whose_body_never_arrives_is_still_followed(server: Server) -> None:
    outcome, elapsed = timed_probe(Spec(server.url("/stuck-redirect"), timeout=3, keyword="systems ok"))

    assert outcome.success is True
    assert elapsed < 1.5
    assert [seen.path for seen in server.seen] == ["/stuck-redirect", "/ok"]


def test_slow_redirect_hops_share_one_total_deadline(server: Server) -> None:
    # 5 hops of 0.4 s each: every hop is within the timeout, the chain is not.
    outcome, elapsed = timed_probe(Spec(server.url("/redirect/5?delay=0.4"), timeout=1.0))

    assert_failed(outcome)
    assert outcome.error == "timed out after 1.0s"
    assert elapsed < 1.6


# --- network failures ----------------------------------------------------------------------------


def test_a_closed_port_is_a_connection_refused_failure() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()

    outcome = probe(Spec(f"http://127.0.0.1:{port}/", timeout=5))

    assert_failed(outcome)
    assert outcome.status_code is None
    assert outcome.error == "connection refused"


def test_a_server_that_never_answers_fails_within_the_timeout(server: Server) -> None:
    outcome, elapsed = timed_probe(Spec(server.url("/hang"), timeout=1.0))

    assert_failed(outcome)
    assert outcome.status_code is None
    assert outcome.error == "timed out after 1.0s"
    assert 0.9 <= elapsed < 2.0
    assert 900 <= outcome.response_time_ms < 2000


def test_a_slow_drip_body_fails_at_the_total_deadline(server: Server) -> None:
    # Each byte arrives well within any per-read timeout; only a total deadline can stop this.
    outcome, elapsed = timed_probe(Spec(server.url("/drip"), timeout=1.0))

    assert_failed(outcome)
    assert outcome.status_code == 200
    assert outcome.error == "timed out after 1.0s"
    assert 0.9 <= elapsed < 1.6


def test_a_body_that_stalls_gives_up_at_the_total_deadline_not_a_full_timeout_later(server: Server) -> None:
    # Headers at 0.5 s, then silence: a read timeout fixed at send time would wait until ~1.5 s.
    outcome, elapsed = timed_probe(Spec(server.url("/late-then-stall?delay=0.5"), timeout=1.0))

    assert_failed(outcome)
    assert outcome.error == "timed out after 1.0s"
    assert elapsed < 1.35


def test_an_unresolvable_host_is_a_dns_failure() -> None:
    # .invalid is reserved (RFC 6761): the resolver answers NXDOMAIN without asking the internet.
    outcome, elapsed = timed_probe(Spec("http://nonexistent.invalid/", timeout=2.0))

    assert_failed(outcome)
    assert outcome.status_code is None
    if elapsed < 2.0:  # a sandboxed resolver may hang instead of answering; then only failure is pinned
        assert outcome.error.startswith("DNS lookup failed for host nonexistent.invalid")


def test_https_to_a_plain_http_port_is_an_ssl_error(server: Server) -> None:
    outcome = probe(Spec(server.url("/ok").replace("http://", "https://"), timeout=5))

    assert_failed(outcome)
    assert outcome.status_code is None
    assert outcome.error.startswith("SSL error: ")


@pytest.mark.parametrize(
    ("url", "start"),
    [
        ("not a url", "invalid URL 'not a url'"),
        ("ftp://example.invalid/file", "invalid URL 'ftp://example.invalid/file'"),
        ("http://127.0.0.1:99999/", "invalid URL 'http://127.0.0.1:99999/'"),
    ],
)
def test_an_invalid_url_is_a_failure_not_an_exception(url: str, start: str) -> None:
    outcome = probe(Spec(url, timeout=2))

    assert_failed(outcome)
    assert outcome.status_code is None
    assert outcome.error.startswith(start)


def test_an_invalid_header_value_is_a_failure_not_an_exception() -> None:
    outcome = probe(Spec("http://127.0.0.1:9/", timeout=2, headers={"X-Bad": "a\r\nInjected: 1"}))

    assert_failed(outcome)
    assert outcome.error.startswith("invalid header")
