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
import functools
import http.client
import re
import ssl
import string
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter
from requests.cookies import extract_cookies_to_jar
from requests.structures import CaseInsensitiveDict
from requests.utils import check_header_validity
from urllib3._collections import HTTPHeaderDict
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
    session: requests.Session | None = None
    direct: _DirectConnection | None = None
    try:
        if _direct_allowed(spec):
            # A plain-http GET or HEAD: its first hop straight over http.client (lookout's connection, the same
            # headers as requests sends), without requests' and urllib3's layers: ~3x less CPU per probe than
            # through them (bench/README.md, "Worker end to end"). A redirect to follow continues in requests.
            direct, sent_headers = _direct_request(spec, run)
            raw_response = direct.getresponse()
            if spec.follow_redirects and raw_response.status in _REDIRECTS and "location" in raw_response.msg:
                session = _session(spec, run)
                response = _redirects_follow(spec, run, session, raw_response, sent_headers)
                status, headers, read1 = response.status_code, response.headers, _decoding_read1(response.raw)
            else:
                status, headers = raw_response.status, _headers(raw_response.msg)
                read1 = _direct_read1(raw_response, headers)
        else:
            session = _session(spec, run)
            response = _requests_send(spec, run, session)
            status, headers, read1 = response.status_code, response.headers, _decoding_read1(response.raw)
        observation.status_code = status
        observation.headers = headers
        observation.error = _status_error(spec, status)
        if observation.error:
            run.clock.stop()  # the body cannot change the verdict: not worth the time or the bandwidth
        else:
            # The body is read even when nothing checks it (then without keeping it): its transfer time
            # is part of the probe.
            keep = spec.keyword is not None or conditions_reference(spec.conditions, "BODY")
            raw = _read_capped(read1, spec.max_body_bytes, keep=keep)
            run.clock.stop()
            observation.body = raw.decode(_charset(headers), errors="replace")
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
        if direct is not None:
            direct.close()
        if session is not None:
            session.close()
    return observation


def _request_headers(spec: ProbeSpec) -> CaseInsensitiveDict[str]:
    headers = CaseInsensitiveDict(_DEFAULT_HEADERS)
    if spec.user_agent:
        headers["User-Agent"] = spec.user_agent
    headers.update(spec.headers)  # case-insensitively, so a spec's "user-agent" replaces ours
    return headers


def _requests_send(spec: ProbeSpec, run: ProbeRun, session: requests.Session) -> requests.Response:
    # Prepared here rather than by Session.request, whose merging of session-wide settings (there are
    # none: the session lives for this probe) costs more CPU than the rest of the request preparation.
    prepared = requests.Request(spec.method.upper(), spec.url, headers=_request_headers(spec), data=spec.body,
                                auth=spec.basic_auth).prepare()
    remaining = run.deadline.remaining()
    return session.send(prepared, timeout=(remaining, remaining), allow_redirects=spec.follow_redirects,
                        stream=True, verify=spec.verify_tls, cert=None, proxies={})


# --- the direct first hop (plain http, GET or HEAD) -----------------------------------------------------

_REDIRECTS = frozenset({301, 302, 303, 307, 308})  # requests' REDIRECT_STATI
# A URL of these characters only is sent as it is by requests too (its requote_uri changes none of them).
_URL_PLAIN = frozenset(string.ascii_letters + string.digits + "-._~:/?#[]@!$&'()*+,;=")


def _direct_allowed(spec: ProbeSpec) -> bool:
    return (spec.url[:7].lower() == "http://" and spec.method.upper() in ("GET", "HEAD") and spec.body is None
            and _URL_PLAIN.issuperset(spec.url))


class _DirectConnection(http.client.HTTPConnection):
    """http.client over lookout's connection: resolved, checked against the target policy, within the deadline."""

    def __init__(self, host: str, port: int, *, dns_host: str, run: ProbeRun) -> None:
        super().__init__(host, port)
        self._dns_host = dns_host
        self._run = run

    def connect(self) -> None:
        self.sock = connect(self._dns_host, self.port, self._run)
        self._run.clock.enter("processing")


def _direct_request(spec: ProbeSpec, run: ProbeRun) -> tuple[_DirectConnection, CaseInsensitiveDict[str]]:
    """Send the first hop as requests would (same request line and headers); the connection and the headers."""
    try:
        parts = urlsplit(spec.url)
        port = parts.port or 80
    except ValueError as exc:  # what requests raises for it: "invalid URL ..."
        raise requests.exceptions.InvalidURL(str(exc)) from exc
    host = parts.hostname
    if not host:
        raise requests.exceptions.InvalidURL(f"No host supplied in {spec.url!r}")
    if not host.isascii():
        raise ProbeError(f"invalid URL {spec.url!r}: non-ASCII host")  # _direct_allowed lets none through
    headers = _request_headers(spec)
    if spec.basic_auth is not None:
        headers["Authorization"] = requests.auth._basic_auth_str(*spec.basic_auth)
    run.hops = 1
    connection = _DirectConnection(host, port, dns_host=host, run=run)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        # Host first (http.client's, as urllib3 lets it add), then the headers in requests' order.
        connection.putrequest(spec.method.upper(), path, skip_accept_encoding=True)
        for header in headers.items():
            check_header_validity(header)  # as requests' preparation: InvalidHeader, before any packet is sent
            connection.putheader(*header)
        connection.endheaders()
    except BaseException:
        connection.close()
        raise
    return connection, headers


def _headers(message: http.client.HTTPMessage) -> CaseInsensitiveDict[str]:
    """The response's headers as requests gives them: case-insensitive, a repeated header's values joined."""
    headers: CaseInsensitiveDict[str] = CaseInsensitiveDict()
    for name, value in message.items():
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


def _direct_read1(response: http.client.HTTPResponse, headers: Mapping[str, str]) -> Callable[[int], bytes]:
    if headers.get("Content-Encoding", "identity").strip().lower() in ("", "identity"):
        def read1(size: int) -> bytes:
            chunk = response.read1(size)
            # http.client's read1 returns b"" for a body cut short of its Content-Length; urllib3 raises.
            if not chunk and size and response.length:
                raise http.client.IncompleteRead(b"", response.length)
            return chunk

        return read1
    # Compressed: urllib3's decoders (gzip, deflate, br, zstd as installed), bounded as in requests' path.
    return _decoding_read1(_urllib3_response(response, method="GET", url=""))


def _urllib3_response(response: http.client.HTTPResponse, *, method: str, url: str) -> urllib3.HTTPResponse:
    # What urllib3's own connection.getresponse builds around http.client's response.
    return urllib3.HTTPResponse(
        body=response, headers=HTTPHeaderDict(response.msg.items()), status=response.status,
        version=response.version, reason=response.reason, preload_content=False, decode_content=True,
        original_response=response, request_method=method, request_url=url)


def _redirects_follow(spec: ProbeSpec, run: ProbeRun, session: requests.Session,
                      first: http.client.HTTPResponse, sent: CaseInsensitiveDict[str]) -> requests.Response:
    """The first hop was a redirect: the rest of the chain goes as requests' Session.send would take it."""
    prepared = requests.Request(spec.method.upper(), spec.url, headers=sent).prepare()
    adapter = session.get_adapter(spec.url)
    assert isinstance(adapter, _Adapter)
    response = adapter.build_response(prepared, _urllib3_response(first, method=spec.method.upper(), url=spec.url))
    extract_cookies_to_jar(session.cookies, prepared, response.raw)  # type: ignore[no-untyped-call]
    response.raw.close()  # as _Adapter.send does for a redirect: its body is nobody's business
    remaining = run.deadline.remaining()
    history: list[requests.Response] = list(session.resolve_redirects(
        response, prepared, stream=True, timeout=(remaining, remaining), verify=spec.verify_tls, cert=None,
        proxies={}))
    if not history:
        return response
    final = history.pop()
    final.history = [response, *history]
    return final


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


def _decoding_read1(raw: Any) -> Callable[[int], bytes]:
    # Content is decoded (gzip etc.), at most the asked size at a time (urllib3 >= 2.6 bounds the decompressor
    # too), so keywords match what a browser would show and a zip bomb stays small.
    return functools.partial(raw.read1, decode_content=True)


def _read_capped(read1: Callable[[int], bytes], limit: int, *, keep: bool) -> bytes:
    """Read the body up to ``limit`` bytes; return it if ``keep``, else b"" (memory: one chunk per probe)."""
    chunks: list[bytes] = []
    received = 0
    while received < limit:
        # read1 returns after at most one receive (each bounded by the deadline, see DeadlineSocket).
        chunk = read1(min(_READ_CHUNK_BYTES, limit - received))
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
