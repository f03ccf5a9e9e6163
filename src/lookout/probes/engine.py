"""HTTP probe engine: one request, one verdict.

Plain Python on purpose (no Django): workers call it from gevent greenlets and tests call it
directly. ``probe`` never raises for anything that can go wrong on the wire, so a bad target can
only ever produce a failed ``Outcome``.
"""

from __future__ import annotations

import http.client
import re
import socket
import ssl
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter

from lookout import __version__

__all__ = ["MAX_BODY_BYTES", "MAX_REDIRECTS", "USER_AGENT", "Outcome", "ProbeSpec", "probe"]

MAX_BODY_BYTES = 1024 * 1024
MAX_REDIRECTS = 5
USER_AGENT = f"Lookout/{__version__} (uptime monitor)"

_READ_CHUNK_BYTES = 64 * 1024
_MAX_ERROR_CHARS = 500
_INVALID_URL_ERRORS = (
    requests.exceptions.InvalidURL,
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidSchema,
    requests.exceptions.URLRequired,
)


@dataclass(frozen=True)
class ProbeSpec:
    url: str
    method: str = "GET"
    timeout: float = 10.0  # seconds, a TOTAL deadline for the whole probe
    expected_status: tuple[int, ...] | None = None  # None means any 2xx or 3xx
    keyword: str | None = None  # body (first max_body_bytes) must contain it
    headers: Mapping[str, str] = field(default_factory=dict)
    max_redirects: int = MAX_REDIRECTS
    max_body_bytes: int = MAX_BODY_BYTES


@dataclass(frozen=True)
class Outcome:
    success: bool
    status_code: int | None  # final response's status, None if no response
    response_time_ms: float  # wall time of the whole probe
    error: str  # "" on success, else a short human-readable reason
    started_at: datetime  # timezone-aware UTC, when the probe started


class _DeadlineExceeded(requests.exceptions.Timeout):
    """The probe's total deadline passed between socket operations."""


def probe(spec: ProbeSpec) -> Outcome:
    started_at = datetime.now(UTC)
    start = time.perf_counter()
    deadline = start + spec.timeout
    status_code: int | None = None
    try:
        with _session(spec, deadline) as session:
            remaining = _remaining(deadline)
            response = session.request(
                spec.method.upper(),
                spec.url,
                headers=dict(spec.headers),
                timeout=(remaining, remaining),
                allow_redirects=True,
                stream=True,
            )
            with response:
                status_code = response.status_code
                error = _judge(spec, response, deadline)
    # Exception, not BaseException: gevent.Timeout, KeyboardInterrupt and SystemExit must get through.
    except Exception as exc:
        error = _describe(exc, spec)
        if status_code is None:
            status_code = _status_from(exc)
    return Outcome(
        success=not error,
        status_code=status_code,
        response_time_ms=(time.perf_counter() - start) * 1000,
        error=_clip(error),
        started_at=started_at,
    )


class _DeadlineAdapter(HTTPAdapter):
    """Gives every hop of a redirect chain only what is left of the probe's total deadline.

    requests passes the same timeout to each hop, so without this a 5-hop chain could take 6x it.
    """

    def __init__(self, deadline: float) -> None:
        super().__init__(max_retries=0)
        self._deadline = deadline

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: bool | str = True,
        cert: Any = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        remaining = _remaining(self._deadline)
        response = super().send(
            request, stream=stream, timeout=(remaining, remaining), verify=verify, cert=cert, proxies=proxies
        )
        if response.is_redirect:
            # requests downloads a redirect's whole body, with no size or time limit, before following
            # it; nobody needs that body, and closing the raw stream makes requests see it as empty.
            response.raw.close()
        return response


def _session(spec: ProbeSpec, deadline: float) -> requests.Session:
    session = requests.Session()
    session.max_redirects = spec.max_redirects
    # Session headers merge case-insensitively with the request's, so a spec's "user-agent" wins.
    session.headers["User-Agent"] = USER_AGENT
    adapter = _DeadlineAdapter(deadline)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _remaining(deadline: float) -> float:
    remaining = deadline - time.perf_counter()
    if remaining <= 0:
        raise _DeadlineExceeded()
    return remaining


def _judge(spec: ProbeSpec, response: requests.Response, deadline: float) -> str:
    """Return "" if the response passes, else why not. Raises on transport errors."""
    _remaining(deadline)  # headers may have been drip-fed past the deadline
    status = response.status_code
    if not _status_ok(status, spec.expected_status):
        # The body cannot change this verdict, so don't spend time or bandwidth on it.
        return f"unexpected status {status} (expected {_expected_text(spec.expected_status)})"
    body = _read_capped(response, spec.max_body_bytes, deadline)
    _remaining(deadline)
    if spec.keyword is not None and not _contains(body, spec.keyword):
        return f"keyword {spec.keyword!r} not found in the first {spec.max_body_bytes} bytes"
    return ""


def _status_ok(status: int, expected: tuple[int, ...] | None) -> bool:
    if expected is None:
        return 200 <= status <= 399
    return status in expected


def _expected_text(expected: tuple[int, ...] | None) -> str:
    if expected is None:
        return "2xx/3xx"
    return ", ".join(str(code) for code in expected) or "nothing"


def _read_capped(response: requests.Response, limit: int, deadline: float) -> bytes:
    raw = response.raw
    chunks: list[bytes] = []
    received = 0
    while received < limit:
        _set_socket_timeout(raw, _remaining(deadline))
        # read1 returns after at most one recv, so a 1-byte-at-a-time drip can't keep us inside a
        # single call past the deadline; read(n) would block until n bytes arrived. Content is
        # decoded (gzip etc.) so keywords match what a browser would show.
        chunk = raw.read1(min(_READ_CHUNK_BYTES, limit - received), decode_content=True)
        if not chunk:
            break
        chunks.append(chunk)
        received += len(chunk)
    return b"".join(chunks)


def _set_socket_timeout(raw: Any, seconds: float) -> None:
    # The read timeout handed to urllib3 was fixed when the request was sent; shrink it so a body
    # that stalls mid-way gives up at the total deadline rather than up to one timeout later.
    sock = getattr(getattr(raw, "connection", None), "sock", None)
    if sock is None:
        # http.client drops conn.sock for "Connection: close" responses; the socket lives on in the
        # response's file object. Private attributes, hence getattr: if they move we only lose
        # precision (a stall can then overrun by up to one timeout), never correctness.
        file_io = getattr(getattr(getattr(raw, "_fp", None), "fp", None), "raw", None)
        sock = getattr(file_io, "_sock", None)
    if sock is None:
        return
    try:
        sock.settimeout(seconds)
    except OSError:
        pass


def _contains(body: bytes, keyword: str) -> bool:
    if keyword in body.decode("utf-8", errors="replace"):
        return True
    try:
        # The cap may cut a multi-byte character; the raw bytes still match in that case.
        return keyword.encode("utf-8") in body
    except UnicodeEncodeError:  # lone surrogates
        return False


def _status_from(exc: Exception) -> int | None:
    # TooManyRedirects carries the last redirect response; it is the last status we saw.
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def _describe(exc: Exception, spec: ProbeSpec) -> str:
    causes = list(_causes(exc))

    def find(*types: type[BaseException]) -> BaseException | None:
        return next((cause for cause in causes if isinstance(cause, types)), None)

    if any(_is_timeout(cause) for cause in causes):
        return f"timed out after {float(spec.timeout)}s"
    if isinstance(exc, requests.exceptions.TooManyRedirects):
        return f"too many redirects (more than {spec.max_redirects})"
    if isinstance(exc, requests.exceptions.InvalidHeader):
        return f"invalid header: {exc}"
    if isinstance(exc, _INVALID_URL_ERRORS):
        return f"invalid URL {spec.url!r}: {exc}"
    if (gai := find(socket.gaierror)) is not None:
        return f"DNS lookup failed for host {_failed_host(exc, spec)} ({_os_reason(gai)})"
    if find(urllib3.exceptions.NameResolutionError) is not None:
        return f"DNS lookup failed for host {_failed_host(exc, spec)}"
    if (ssl_error := find(ssl.SSLError)) is not None:
        return f"SSL error: {_ssl_reason(ssl_error)}"
    if find(requests.exceptions.SSLError, urllib3.exceptions.SSLError) is not None:
        return f"SSL error: {exc}"
    if find(ConnectionRefusedError):
        return "connection refused"
    if find(ConnectionResetError):
        return "connection reset by peer"
    if find(http.client.RemoteDisconnected):
        return "server closed the connection without sending a response"
    if find(http.client.IncompleteRead):
        return "connection closed before the whole body was received"
    if find(requests.exceptions.ContentDecodingError, urllib3.exceptions.DecodeError):
        return f"could not decode the response body: {exc}"
    if (os_error := find(OSError)) is not None and os_error.strerror:
        return f"connection failed: {_os_reason(os_error)}"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError | urllib3.exceptions.ProtocolError):
        return f"malformed response: {exc}"
    if isinstance(exc, requests.exceptions.ConnectionError):
        return f"connection failed: {exc}"
    return f"unexpected error: {type(exc).__name__}: {exc}"


def _is_timeout(error: BaseException) -> bool:
    # urllib3 makes every NewConnectionError (refused, DNS...) a ConnectTimeoutError subclass.
    if isinstance(error, urllib3.exceptions.NewConnectionError):
        return False
    return isinstance(error, requests.exceptions.Timeout | urllib3.exceptions.TimeoutError | TimeoutError)


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception and everything it wraps: requests and urllib3 nest the real cause deeply."""
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        nested = [arg for arg in current.args if isinstance(arg, BaseException)]
        for attr in ("reason", "__cause__", "__context__"):
            value = getattr(current, attr, None)
            if isinstance(value, BaseException):
                nested.append(value)
        pending.extend(nested)


def _failed_host(exc: Exception, spec: ProbeSpec) -> str:
    # After a redirect the host that failed is not necessarily the one in the spec.
    request = getattr(exc, "request", None)
    url = getattr(request, "url", None) or spec.url
    try:
        return urlsplit(url).hostname or url
    except ValueError:
        return url


def _os_reason(error: BaseException) -> str:
    strerror = getattr(error, "strerror", None)
    return str(strerror or error).lower()


def _ssl_reason(error: BaseException) -> str:
    # "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate (_ssl.c:1006)"
    # -> "certificate verify failed: self-signed certificate"
    text = re.sub(r"^\[[^\]]*\]\s*", "", str(error))
    return re.sub(r"\s*\(_ssl\.c:\d+\)$", "", text)


def _clip(error: str) -> str:
    error = " ".join(error.split())  # one line, whatever the exception text contained
    if len(error) <= _MAX_ERROR_CHARS:
        return error
    return error[: _MAX_ERROR_CHARS - 3] + "..."
