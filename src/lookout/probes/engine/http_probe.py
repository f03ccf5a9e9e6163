"""The http type: one request with requests, redirects followed, the body read up to a cap.

requests stays the client (redirects, auth, encodings, cookies between hops); the engine instruments what
sits under it. Its adapter hands requests one connection pool per host of this probe, whose connections
resolve the name themselves (dnspython), check the address against the target policy, connect a
DeadlineSocket to it and, for https, do the TLS handshake over it: the Host header, SNI and certificate
host name stay the URL's name while the socket goes to the checked address. Every hop of a redirect chain
goes through the same steps, so a redirect to an internal address is refused before any packet reaches it.
"""

from __future__ import annotations

import codecs
import http.client
import re
import ssl
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import LocationValueError

from lookout.probes.engine.conditions import conditions_reference
from lookout.probes.engine.run import Observation, ProbeError, ProbeRun
from lookout.probes.engine.sockets import connect, os_error_text
from lookout.probes.engine.spec import USER_AGENT, ProbeSpec
from lookout.probes.engine.targets import UnsafeTarget, host_name_check
from lookout.probes.engine.tls import ssl_error_text, tls_connect

TYPE = "http"
SCHEMES = ("http", "https")
# The ProbeSpec fields this type reads, besides those every type has (url, timeout, conditions, policy).
SPEC_FIELDS = ("method", "body", "headers", "basic_auth", "follow_redirects", "max_redirects", "expected_status",
               "keyword", "max_body_bytes", "ip_version", "verify_tls", "ca_pem")

_READ_CHUNK_BYTES = 64 * 1024
_DEFAULT_HEADERS = {**requests.utils.default_headers(), "User-Agent": USER_AGENT}
_INVALID_URL_ERRORS = (
    requests.exceptions.InvalidURL,
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidSchema,
    requests.exceptions.URLRequired,
)


def url_rule(url: str) -> None:
    """Raise ValueError, with a message for the user, unless url is http(s)://HOST[:PORT][/...]."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises on a malformed port)
    except ValueError as exc:
        raise ValueError("Enter a valid http:// or https:// URL.") from exc
    if parts.scheme not in SCHEMES or not parts.hostname or any(c.isspace() or ord(c) < 32 for c in url):
        raise ValueError("Enter a valid http:// or https:// URL.")
    host_name_check(parts.hostname)


def target_hosts(url: str) -> list[tuple[str, str]]:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises on a malformed port)
    except ValueError as exc:
        raise UnsafeTarget(f"invalid URL {url!r}: {exc}") from exc
    if parts.scheme not in SCHEMES or not parts.hostname:
        raise UnsafeTarget(f"invalid URL {url!r}: expected http://HOST/... or https://HOST/...")
    return [(parts.hostname, "")]


def probe(spec: ProbeSpec, run: ProbeRun) -> Observation:
    observation = Observation()
    session = _session(spec, run)
    try:
        # Prepared here rather than by Session.request, whose merging of session-wide settings (there are
        # none: the session lives for this probe) costs more CPU than the rest of the request preparation.
        headers = CaseInsensitiveDict(_DEFAULT_HEADERS)
        if spec.user_agent:
            headers["User-Agent"] = spec.user_agent
        headers.update(spec.headers)  # case-insensitively, so a spec's "user-agent" replaces ours
        prepared = requests.Request(spec.method.upper(), spec.url, headers=headers, data=spec.body,
                                    auth=spec.basic_auth).prepare()
        remaining = run.deadline.remaining()
        response = session.send(prepared, timeout=(remaining, remaining), allow_redirects=spec.follow_redirects,
                                stream=True, verify=spec.verify_tls, cert=None, proxies={})
        with response:
            observation.status_code = response.status_code
            observation.headers = response.headers
            observation.error = _status_error(spec, response.status_code)
            if observation.error:
                run.clock.stop()  # the body cannot change the verdict: not worth the time or the bandwidth
            else:
                # The body is read even when nothing checks it (then without keeping it): its transfer time
                # is part of the probe.
                keep = spec.keyword is not None or conditions_reference(spec.conditions, "BODY")
                raw = _read_capped(response.raw, spec.max_body_bytes, keep=keep)
                run.clock.stop()
                observation.body = raw.decode(_charset(response.headers), errors="replace")
                if spec.keyword is not None and not _contains(raw, spec.keyword):
                    observation.error = f"keyword {spec.keyword!r} not found in the first {spec.max_body_bytes} bytes"
    except (UnsafeTarget, ProbeError) as exc:
        observation.error = str(exc)
        observation.refused = isinstance(exc, UnsafeTarget)
    # Exception, not BaseException: gevent.Timeout, KeyboardInterrupt and SystemExit must get through.
    except Exception as exc:
        observation.error = _describe(exc, spec, run)
        observation.refused = any(isinstance(cause, UnsafeTarget) for cause in _causes(exc))
        if observation.status_code is None:
            observation.status_code = _status_from(exc)
    finally:
        run.clock.stop()
        session.close()
    return observation


class _Instrumented:
    """What both connection classes change: how the socket is made."""

    _dns_host: str
    port: int

    def __init__(self, *args: Any, run: ProbeRun, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._run = run

    def _new_conn(self) -> Any:
        # _dns_host keeps a trailing dot: "example.com." is looked up as an absolute name, without search list.
        return connect(self._dns_host, self.port, self._run, what="redirect to" if self._run.hops > 1 else "")


class _Connection(_Instrumented, HTTPConnection):
    def connect(self) -> None:
        super().connect()
        self._run.clock.enter("processing")


class _TlsConnection(_Instrumented, HTTPSConnection):
    def connect(self) -> None:
        # Replaces urllib3's whole connect (proxies, its own TLS wrapping): the engine uses no proxy, and
        # does TLS itself, within the deadline, from the spec's trust settings.
        self.sock = sock = self._new_conn()
        self.sock = tls_connect(sock, self.host, self._run)
        self.is_verified = self._run.spec.verify_tls
        self._has_connected_to_proxy = False
        self._run.clock.enter("processing")


class _Pool(HTTPConnectionPool):
    ConnectionCls = _Connection


class _TlsPool(HTTPSConnectionPool):
    ConnectionCls = _TlsConnection

    def _validate_conn(self, conn: Any) -> None:
        # As urllib3's, minus the InsecureRequestWarning: verify_tls false is the monitor owner's choice.
        HTTPConnectionPool._validate_conn(self, conn)
        if conn.is_closed:
            conn.connect()


class _Adapter(HTTPAdapter):
    """One per probe: hands out this probe's own pools and gives each hop what is left of the deadline."""

    def __init__(self, run: ProbeRun) -> None:
        self._run = run
        self._pools: dict[tuple[str, str, int], HTTPConnectionPool] = {}
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        self.poolmanager = None  # the pools are ours: get_connection_with_tls_context

    def get_connection_with_tls_context(
        self, request: requests.PreparedRequest, verify: Any, proxies: Any = None, cert: Any = None,
    ) -> HTTPConnectionPool:
        parts = urlsplit(request.url or "")
        scheme = parts.scheme.lower()
        host = parts.hostname
        if not host or scheme not in SCHEMES:
            raise LocationValueError(f"No host specified in {request.url!r}")
        port = parts.port or (443 if scheme == "https" else 80)
        pool = self._pools.get((scheme, host, port))
        if pool is None:
            pool_class = _TlsPool if scheme == "https" else _Pool
            pool = self._pools[(scheme, host, port)] = pool_class(host, port, maxsize=1, run=self._run)
        return pool

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        pass  # TLS trust comes from the spec (tls.tls_context), not from requests' settings

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: bool | str = True,
        cert: Any = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        self._run.hops += 1
        # requests passes the same timeout to each hop; a 5-hop chain could otherwise take 6x the deadline.
        remaining = self._run.deadline.remaining()
        if self._run.hops > 1:
            # Between hops the clock ran on in the previous hop's transfer. A new connection switches to
            # dns at once; a reused one sends the request right away. (The first hop is still in dns,
            # where the clock started: that time went into preparing the request.)
            self._run.clock.enter("processing")
        response = super().send(
            request, stream=stream, timeout=(remaining, remaining), verify=verify, cert=cert, proxies=proxies
        )
        if response.is_redirect and self._run.spec.follow_redirects:
            # requests downloads a redirect's whole body, with no size or time limit, before following
            # it; nobody needs that body, and closing the raw stream makes requests see it as empty.
            response.raw.close()
        return response

    def close(self) -> None:
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()


def _session(spec: ProbeSpec, run: ProbeRun) -> requests.Session:
    session = requests.Session()  # one per probe: cookies set by a redirect hop must not reach another probe
    # No proxies, .netrc or CA bundle from the environment: the probe goes to the checked address itself.
    session.trust_env = False
    session.max_redirects = spec.max_redirects
    adapter = _Adapter(run)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _status_error(spec: ProbeSpec, status: int) -> str:
    if spec.expected_status is not None:
        if status in spec.expected_status:
            return ""
        expected = ", ".join(str(code) for code in spec.expected_status) or "nothing"
        return f"unexpected status {status} (expected {expected})"
    if 200 <= status <= 399 or conditions_reference(spec.conditions, "STATUS"):
        return ""  # a condition on [STATUS] replaces the default rule
    return f"unexpected status {status} (expected 2xx/3xx)"


def _read_capped(raw: Any, limit: int, *, keep: bool) -> bytes:
    """Read the body up to ``limit`` bytes; return it if ``keep``, else b"" (memory: one chunk per probe)."""
    chunks: list[bytes] = []
    received = 0
    while received < limit:
        # read1 returns after at most one receive (each bounded by the deadline, see DeadlineSocket).
        # Content is decoded (gzip etc.), at most the asked size at a time (urllib3 >= 2.6 bounds the
        # decompressor too), so keywords match what a browser would show and a zip bomb stays small.
        chunk = raw.read1(min(_READ_CHUNK_BYTES, limit - received), decode_content=True)
        if not chunk:
            break
        if keep:
            chunks.append(chunk)
        received += len(chunk)
    return b"".join(chunks)


def _charset(headers: Mapping[str, str]) -> str:
    match = re.search(r"charset=[\"']?([\w.:-]+)", headers.get("Content-Type", ""), re.IGNORECASE)
    if match:
        try:
            return codecs.lookup(match.group(1)).name
        except LookupError:
            pass
    return "utf-8"


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


def _describe(exc: Exception, spec: ProbeSpec, run: ProbeRun) -> str:
    causes = list(_causes(exc))

    def find(*types: type[BaseException]) -> BaseException | None:
        return next((cause for cause in causes if isinstance(cause, types)), None)

    if (failure := find(UnsafeTarget, ProbeError)) is not None:
        return str(failure)
    if any(_is_timeout(cause) for cause in causes):
        return run.timeout_text()
    if isinstance(exc, requests.exceptions.TooManyRedirects):
        return f"too many redirects (more than {spec.max_redirects})"
    if isinstance(exc, requests.exceptions.InvalidHeader):
        return f"invalid header: {exc}"
    if isinstance(exc, _INVALID_URL_ERRORS):
        return f"invalid URL {spec.url!r}: {exc}"
    if (ssl_error := find(ssl.SSLError)) is not None:
        assert isinstance(ssl_error, ssl.SSLError)
        return ssl_error_text(ssl_error, run.tls)
    if find(requests.exceptions.SSLError, urllib3.exceptions.SSLError) is not None:
        return f"SSL error: {exc}"
    if find(http.client.RemoteDisconnected):
        return "server closed the connection without sending a response"
    if (os_error := find(ConnectionRefusedError, ConnectionResetError, BrokenPipeError)) is not None:
        return os_error_text(os_error) or str(os_error)
    if (bad_line := find(http.client.BadStatusLine)) is not None:
        return f"malformed response: invalid status line {str(bad_line)[:80]!r}"
    if find(http.client.LineTooLong):
        return "malformed response: a header line is too long"
    if find(urllib3.exceptions.InvalidChunkLength) or (find(http.client.IncompleteRead) and find(ValueError)):
        return "malformed response: invalid chunk size"  # http.client: IncompleteRead from int(size, 16)
    if find(http.client.IncompleteRead):
        return "connection closed before the whole body was received"
    if find(requests.exceptions.ContentDecodingError, urllib3.exceptions.DecodeError):
        return f"could not decode the response body: {exc}"
    if (os_error := find(OSError)) is not None and os_error_text(os_error):
        return os_error_text(os_error) or ""
    if (http_error := find(http.client.HTTPException)) is not None and str(http_error):
        return f"malformed response: {http_error}"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError | urllib3.exceptions.ProtocolError):
        return f"malformed response: {exc}"
    if isinstance(exc, requests.exceptions.ConnectionError):
        return f"connection failed: {exc}"
    if isinstance(exc, ValueError):  # a method or header http.client refuses to send
        return f"invalid request: {exc}"
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
