"""Deliveries dial what they checked: at send time the receiver's name is resolved once, that address is checked
against the installation's target policy and that very address is connected to; a refused address is a permanent
failure and no packet reaches it; redirects are not followed.

Real sockets on loopback: a scripted DNS server (dnslib) that the engine asks instead of /etc/resolv.conf, and
HTTP receivers on 127.0.0.1 (the "internal" address) and 127.0.0.2 (the stand-in for a public receiver, allowed
by LOOKOUT_TARGET_ALLOWLIST where a test needs one that passes the policy)."""

import ipaddress
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import trustme
from dnslib import QTYPE, RR, A, DNSRecord
from dnslib.server import DNSLogger, DNSServer

from lookout.alerting.channels import Message, TransportError, transport_for
from lookout.alerting.channels.http_post import http_post
from lookout.alerting.models import Channel
from lookout.core.target_policy import target_url_check
from lookout.probes.engine import nameservers_set

NAME = "hook.lookout.test"
PUBLIC = "93.184.216.34"  # what the name resolved to when the channel was saved; never dialled by these tests
INTERNAL_NAME = "internal.lookout.test"  # always 127.0.0.1


@dataclass
class RebindingDns:
    """Answers A queries for NAME from a script, one answer per query, then the last one forever (TTL 0, as a
    rebinding attacker's server would); INTERNAL_NAME is 127.0.0.1; AAAA queries get no answer. Records every
    query."""

    answers: list[str]
    queries: list[tuple[str, str]] = field(default_factory=list)
    address: str = ""

    def resolve(self, request: DNSRecord, handler: Any) -> DNSRecord:
        name = str(request.q.qname).rstrip(".").lower()
        qtype = QTYPE[request.q.qtype]
        self.queries.append((name, qtype))
        reply = request.reply()
        if name == NAME and qtype == "A":
            address = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
            reply.add_answer(RR(name, QTYPE.A, rdata=A(address), ttl=0))
        elif name == INTERNAL_NAME and qtype == "A":
            reply.add_answer(RR(name, QTYPE.A, rdata=A("127.0.0.1"), ttl=0))
        return reply

    def a_queries(self) -> int:
        return sum(1 for _, qtype in self.queries if qtype == "A")


@pytest.fixture
def dns() -> Iterator[RebindingDns]:
    state = RebindingDns(answers=[PUBLIC])
    server = DNSServer(state, address="127.0.0.1", port=0, logger=DNSLogger(prefix=False, logf=lambda text: None))
    server.server.daemon_threads = True
    state.address = f"127.0.0.1:{server.server.server_address[1]}"
    thread = threading.Thread(target=server.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    nameservers_set([state.address])
    try:
        yield state
    finally:
        nameservers_set(None)
        server.server.shutdown()
        server.server.server_close()
        thread.join(timeout=5)


class Receiver:
    """An HTTP server on one loopback address and a port; answers `status` (with `location`, if set)."""

    def __init__(self, host: str, port: int = 0, *, tls: ssl.SSLContext | None = None) -> None:
        self.received: list[tuple[str, dict[str, str]]] = []
        self.server_names: list[str | None] = []  # SNI of every TLS handshake
        self.status, self.location = 200, ""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.received.append((self.path, dict(self.headers)))
                self.send_response(receiver.status)
                if receiver.location:
                    self.send_header("Location", receiver.location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def get_request(self) -> tuple[Any, Any]:
                sock, address = super().get_request()
                if tls is not None:
                    tls.sni_callback = lambda _sock, name, _context: receiver.server_names.append(name) and None
                    sock = tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
                return sock, address

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # the client refusing our certificate ends the handshake on our side too

        self._server = Server((host, port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def receivers() -> Iterator[tuple[Receiver, Receiver]]:
    """(internal, public): one port, on 127.0.0.1 and on 127.0.0.2, so a URL reaches whichever its name resolves to."""
    internal = Receiver("127.0.0.1")
    public = Receiver("127.0.0.2", internal.port)
    yield internal, public
    internal.close()
    public.close()


@pytest.fixture
def policy_off(settings):
    settings.LOOKOUT_ALLOW_PRIVATE_TARGETS = False
    settings.LOOKOUT_TARGET_ALLOWLIST = ()


@pytest.fixture
def public_stand_in(settings):
    """The policy is on, and 127.0.0.2 stands in for a public address: only it of the loopback net is allowed."""
    settings.LOOKOUT_ALLOW_PRIVATE_TARGETS = False
    settings.LOOKOUT_TARGET_ALLOWLIST = (ipaddress.ip_network("127.0.0.2/32"),)


def _post(url: str) -> int:
    return http_post(url, body=b"{}", headers={"Content-Type": "application/json"})


@pytest.mark.parametrize(("rebound_to", "rule"), [("127.0.0.1", "a loopback address"),
                                                  ("169.254.169.254", "the cloud metadata address")])
def test_it_refuses_a_name_rebound_to_an_internal_address_at_send_time(
        policy_off, dns, receivers, rebound_to: str, rule: str):
    internal, _ = receivers
    url = f"http://{NAME}:{internal.port}/hook"
    dns.answers = [PUBLIC, rebound_to]
    target_url_check("http", url)  # saved: the name resolved to a public address then

    with pytest.raises(TransportError) as refused:
        _post(url)

    assert refused.value.permanent
    assert f"{NAME} resolves to {rule}" in str(refused.value)
    assert "LOOKOUT_ALLOW_PRIVATE_TARGETS" in str(refused.value)
    assert internal.received == []


def test_it_refuses_a_name_rebound_through_the_slack_channel_too(policy_off, dns, receivers):
    internal, _ = receivers
    dns.answers = [PUBLIC, "127.0.0.1"]
    channel = Channel(kind="slack", url=f"http://{NAME}:{internal.port}/hook")
    target_url_check("http", channel.url)

    with pytest.raises(TransportError, match="resolves to a loopback address") as refused:
        transport_for("slack").send(channel, Message(event="channel.test", event_id="e1", payload={}))

    assert refused.value.permanent
    assert internal.received == []


def test_it_refuses_an_internal_ip_literal_without_a_lookup(policy_off, dns):
    with pytest.raises(TransportError, match="169.254.169.254 is the cloud metadata address") as refused:
        _post("http://169.254.169.254/latest/meta-data/")
    assert refused.value.permanent
    assert dns.queries == []


def test_it_resolves_the_name_once_at_send_time(public_stand_in, dns, receivers):
    _, public = receivers
    dns.answers = ["127.0.0.2"]
    url = f"http://{NAME}:{public.port}/hook"
    target_url_check("http", url)
    saved = len(dns.queries)

    assert _post(url) == 200

    # One lookup, the one whose answer was checked and dialled: a second would give a rebinding server a
    # chance to answer the check and the connection differently.
    assert dns.queries[saved:] == [(NAME, "A")]


def test_it_delivers_to_the_address_it_checked(public_stand_in, dns, receivers):
    internal, public = receivers
    url = f"http://{NAME}:{public.port}/hook"
    # Saved and first resolved at send time to the allowed address; every later answer is the internal one.
    dns.answers = ["127.0.0.2", "127.0.0.2", "127.0.0.1"]
    target_url_check("http", url)

    assert _post(url) == 200

    assert internal.received == []
    [(path, headers)] = public.received
    assert path == "/hook"
    assert headers["Host"] == f"{NAME}:{public.port}"  # the socket went to the address, the request to the name


def test_with_private_targets_allowed_it_delivers_to_loopback(settings, dns, receivers):
    settings.LOOKOUT_ALLOW_PRIVATE_TARGETS = True
    internal, public = receivers
    dns.answers = ["127.0.0.1"]

    assert _post(f"http://{NAME}:{internal.port}/hook") == 200

    assert [headers["Host"] for _, headers in internal.received] == [f"{NAME}:{internal.port}"]
    assert public.received == []
    assert dns.a_queries() == 1


@pytest.mark.parametrize("location", ["http://127.0.0.1:{port}/hook", "http://localhost:{port}/hook",
                                      f"http://{INTERNAL_NAME}:{{port}}/hook"])
def test_it_does_not_follow_a_redirect_to_an_internal_address(public_stand_in, dns, receivers, location: str):
    internal, public = receivers
    dns.answers = ["127.0.0.2"]
    public.status, public.location = 307, location.format(port=internal.port)

    with pytest.raises(TransportError, match="HTTP 307") as refused:
        _post(f"http://{NAME}:{public.port}/hook")

    assert (refused.value.permanent, refused.value.status_code) == (True, 307)
    assert len(public.received) == 1
    assert internal.received == []


def test_https_verifies_the_certificate_and_sends_the_name_as_sni(public_stand_in, dns):
    # A certificate for the name from a CA nobody trusts: the engine dials 127.0.0.2, asks for the name, refuses.
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme.CA().issue_cert(NAME).configure_cert(context)
    receiver = Receiver("127.0.0.2", tls=context)
    dns.answers = ["127.0.0.2"]
    try:
        with pytest.raises(TransportError, match="certificate") as failed:
            _post(f"https://{NAME}:{receiver.port}/hook")
    finally:
        receiver.close()

    # Two handshakes, both to the checked address: the refused one, and the engine's unverified one that only
    # reads the certificate's facts (lookout.probes.engine.tls). Each asked for the URL's name.
    assert receiver.server_names == [NAME, NAME]
    assert receiver.received == []
    assert not failed.value.permanent  # a certificate can be fixed by the receiver's operator


def test_an_allowed_address_that_does_not_answer_is_retried(public_stand_in, dns):
    closed = Receiver("127.0.0.2")
    closed.close()  # nothing listens on its port any more
    dns.answers = ["127.0.0.2"]

    with pytest.raises(TransportError, match="connection refused") as failed:
        _post(f"http://{NAME}:{closed.port}/hook")

    assert not failed.value.permanent
