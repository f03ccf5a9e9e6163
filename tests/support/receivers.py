"""Real receivers of alerts on 127.0.0.1: an HTTP server for webhooks and Slack, an SMTP server for email."""

import email
import email.policy
import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller


@dataclass(frozen=True)
class Received:
    at: float  # time.time() when the request arrived
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def signature_valid(self, secret: str) -> bool:
        expected = "sha256=" + hmac.new(secret.encode(), self.body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, self.headers.get("X-Lookout-Signature", ""))


@dataclass
class Answer:
    status: int = 200
    delay: float = 0.0


@dataclass
class WebhookReceiver:
    """Records every request; answers from a script of Answers, then with `default`."""

    default: Answer = field(default_factory=Answer)
    script: list[Answer] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._lock:
                    receiver.received.append(Received(time.time(), self.path, dict(self.headers), body))
                    answer = receiver.script.pop(0) if receiver.script else receiver.default
                if answer.delay:
                    time.sleep(answer.delay)
                try:
                    self.send_response(answer.status)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:  # the sender gave up (or died) meanwhile
                    pass

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    def answer(self, *answers: Answer, default: Answer | None = None) -> None:
        with self._lock:
            self.script = list(answers)
            if default is not None:
                self.default = default

    def requests(self, predicate: Callable[[Received], bool] = lambda r: True) -> list[Received]:
        with self._lock:
            return [request for request in self.received if predicate(request)]

    def events(self, event: str) -> list[Received]:
        return self.requests(lambda r: r.headers.get("X-Lookout-Event") == event
                             or _json_event(r.body) == event)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _json_event(body: bytes) -> str | None:
    try:
        return json.loads(body).get("event")
    except (ValueError, AttributeError):
        return None


@dataclass(frozen=True)
class Mail:
    at: float
    sender: str
    recipients: list[str]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def event_id(self) -> str:
        return str(self.message["X-Lookout-Event-Id"])


class _Collector:
    def __init__(self, receiver: "SmtpReceiver") -> None:
        self.receiver = receiver

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any) -> str:
        if address in self.receiver.refused:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.receiver.lock:
            self.receiver.mails.append(Mail(time.time(), envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"


class SmtpReceiver:
    """aiosmtpd on 127.0.0.1: what Lookout's SMTP backend sends arrives here, parsed."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.mails: list[Mail] = []
        self.refused: set[str] = set()
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self._controller = Controller(_Collector(self), hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def received(self, subject_contains: str = "") -> list[Mail]:
        with self.lock:
            return [mail for mail in self.mails if subject_contains in mail.subject]

    def close(self) -> None:
        self._controller.stop()
