"""Servers the probe engine tests start on loopback: HTTPS with certificates made for the test (trustme),
a DNS server (dnslib) with a small zone, and raw TCP servers scripted per test. No traffic leaves the machine.

The fixtures are made available to tests/probes/engine by conftest.py; helpers are imported from here directly.
"""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import trustme
from dnslib import AAAA, CNAME, MX, NS, QTYPE, RCODE, RR, TXT, A, DNSRecord
from dnslib.server import DNSLogger, DNSServer

from lookout.probes.engine import nameservers_set


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # The engine ignores proxy variables (trust_env off); clear them anyway so nothing else routes off-box.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


# --- raw TCP servers ------------------------------------------------------------------------------


@dataclass
class TcpServer:
    host: str
    port: int
    stop: threading.Event
    connections: int = 0  # accepted so far

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


TcpHandler = Callable[[socket.socket, TcpServer], None]


@pytest.fixture
def tcp_server() -> Iterator[Callable[..., TcpServer]]:
    """start(handler, host="127.0.0.1") -> TcpServer: every connection runs handler(conn, server) in a thread."""
    listeners: list[tuple[socket.socket, TcpServer]] = []

    def start(handler: TcpHandler, host: str = "127.0.0.1") -> TcpServer:
        listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, 0))
        listener.listen(128)
        listener.settimeout(0.05)
        server = TcpServer(host=host, port=listener.getsockname()[1], stop=threading.Event())
        listeners.append((listener, server))

        def serve(conn: socket.socket) -> None:
            with conn:
                try:
                    handler(conn, server)
                except OSError:
                    pass

        def accept_loop() -> None:
            while not server.stop.is_set():
                try:
                    conn, _ = listener.accept()
                except TimeoutError:
                    continue
                except OSError:
                    return
                conn.settimeout(30)
                server.connections += 1
                threading.Thread(target=serve, args=(conn,), daemon=True).start()

        threading.Thread(target=accept_loop, daemon=True).start()
        return server

    yield start
    for listener, server in listeners:
        server.stop.set()
        listener.close()


def read_request(conn: socket.socket) -> bytes:
    """Read an HTTP request head (enough for these tests: probes send no body unless asked)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


# --- HTTPS ---------------------------------------------------------------------------------------


@dataclass
class HttpsServer:
    port: int
    host: str
    ca_pem: str
    not_before: dt.datetime
    not_after: dt.datetime
    hits: list[str] = field(default_factory=list)  # Host headers seen

    def url(self, path: str = "/", host: str | None = None) -> str:
        return f"https://{host or self.host}:{self.port}{path}"


class _TlsHttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: Any, handler: Any, context: ssl.SSLContext, state: HttpsServer | None = None) -> None:
        super().__init__(address, handler)
        self.context = context
        self.state = state

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The handshake runs in the request's thread, so a client that aborts it disturbs nobody.
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        try:
            super().finish_request(tls, client_address)
        finally:
            tls.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


class _HttpsHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _TlsHttpServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        assert self.server.state is not None
        self.server.state.hits.append(self.headers.get("Host", ""))
        body = b'{"status": "UP", "secure": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="session")
def tls_ca() -> trustme.CA:
    return trustme.CA(organization_name="Lookout Test CA")


@pytest.fixture
def https_server(tls_ca: trustme.CA) -> Iterator[Callable[..., HttpsServer]]:
    """start(identities=("127.0.0.1", "localhost"), not_after=..., not_before=..., host="127.0.0.1")."""
    servers: list[tuple[_TlsHttpServer, threading.Thread]] = []
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)

    def start(identities: tuple[str, ...] = ("127.0.0.1", "localhost"), *, host: str = "127.0.0.1",
              not_before: dt.datetime | None = None, not_after: dt.datetime | None = None) -> HttpsServer:
        not_before = not_before or now - dt.timedelta(days=1)
        not_after = not_after or now + dt.timedelta(days=30)
        cert = tls_ca.issue_cert(*identities, not_before=not_before, not_after=not_after)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(context)
        server_class = type("Server", (_TlsHttpServer,), {"address_family": socket.AF_INET6}) \
            if ":" in host else _TlsHttpServer
        httpd = server_class((host, 0), _HttpsHandler, context)
        state = HttpsServer(port=httpd.server_address[1], host=host, ca_pem=tls_ca.cert_pem.bytes().decode(),
                            not_before=not_before, not_after=not_after)
        httpd.state = state
        thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        servers.append((httpd, thread))
        return state

    yield start
    for httpd, thread in servers:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


# --- DNS -----------------------------------------------------------------------------------------

ZONE: dict[tuple[str, str], list[str]] = {
    ("app.lookout.test", "A"): ["127.0.0.1"],
    ("app.lookout.test", "AAAA"): ["::1"],
    ("v6only.lookout.test", "AAAA"): ["::1"],
    ("internal.lookout.test", "A"): ["10.1.2.3"],
    ("metadata.lookout.test", "A"): ["169.254.169.254"],
    ("public.lookout.test", "A"): ["93.184.216.34"],
    ("public.lookout.test", "AAAA"): ["2606:2800:220:1:248:1893:25c8:1946"],
    ("mixed.lookout.test", "A"): ["93.184.216.34", "10.0.0.7"],
    ("alias.lookout.test", "CNAME"): ["public.lookout.test"],
    ("lookout.test", "MX"): ["10 mx1.lookout.test", "20 mx2.lookout.test"],
    ("lookout.test", "TXT"): ["v=spf1 -all"],
    ("lookout.test", "NS"): ["ns1.lookout.test", "ns2.lookout.test"],
    ("*.fleet.lookout.test", "A"): ["127.0.0.1"],
}
_RDATA = {
    "A": A, "AAAA": AAAA, "CNAME": lambda text: CNAME(text + "."), "NS": lambda text: NS(text + "."),
    "TXT": TXT, "MX": lambda text: MX(text.split()[1] + ".", int(text.split()[0])),
}


@dataclass
class DnsServer:
    address: str  # "127.0.0.1:PORT"
    records: dict[tuple[str, str], list[str]]
    servfail: set[str] = field(default_factory=lambda: {"broken.lookout.test"})
    delay: float = 0.0  # seconds before each answer (each query has its own thread)
    queries: list[tuple[str, str]] = field(default_factory=list)

    def resolve(self, request: DNSRecord, handler: Any) -> DNSRecord:
        name = str(request.q.qname).rstrip(".").lower()
        qtype = QTYPE[request.q.qtype]
        self.queries.append((name, qtype))
        if self.delay:
            time.sleep(self.delay)
        reply = request.reply()
        if name in self.servfail:
            reply.header.rcode = RCODE.SERVFAIL
            return reply
        for _ in range(8):  # follow CNAMEs, as a recursive resolver would
            owner = self._owner(name)
            if owner is None:
                if not reply.rr:
                    reply.header.rcode = RCODE.NXDOMAIN
                return reply
            texts = self.records.get((owner, qtype))
            if texts is None and qtype != "CNAME" and (target := self.records.get((owner, "CNAME"))):
                reply.add_answer(RR(name, QTYPE.CNAME, rdata=_RDATA["CNAME"](target[0]), ttl=60))
                name = target[0]
                continue
            for text in texts or ():
                reply.add_answer(RR(name, getattr(QTYPE, qtype), rdata=_RDATA[qtype](text), ttl=60))
            return reply
        return reply

    def _owner(self, name: str) -> str | None:
        if any(owner == name for owner, _ in self.records):
            return name
        wildcard = "*." + name.split(".", 1)[-1]
        if any(owner == wildcard for owner, _ in self.records):
            return wildcard
        return None


@pytest.fixture
def dns_server() -> Iterator[DnsServer]:
    state = DnsServer(address="", records={key: list(value) for key, value in ZONE.items()})
    server = DNSServer(state, address="127.0.0.1", port=0, logger=DNSLogger(prefix=False, logf=lambda text: None))
    server.server.daemon_threads = True
    state.address = f"127.0.0.1:{server.server.server_address[1]}"
    thread = threading.Thread(target=server.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.server.shutdown()
        server.server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def local_names(dns_server: DnsServer) -> Iterator[DnsServer]:
    """The engine resolves host names with the test's DNS server instead of /etc/resolv.conf's."""
    nameservers_set([dns_server.address])
    try:
        yield dns_server
    finally:
        nameservers_set(None)
