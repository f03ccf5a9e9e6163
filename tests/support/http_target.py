"""A real HTTP server on 127.0.0.1 that probes hit; it keeps its own log of every hit."""

import ssl
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Hit:
    at: float  # time.time()
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class Behaviour:
    status: int = 200
    body: bytes = b"ok"
    delay: float = 0.0


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        # A prober that went away mid-answer (a worker killed by a test) is no error of the target's.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


@dataclass
class HttpTarget:
    behaviour: Behaviour = field(default_factory=Behaviour)
    hits: list[Hit] = field(default_factory=list)
    # Serve HTTPS with this server-side context (e.g. from trustme); the handshake runs in the handler thread.
    tls: ssl.SSLContext | None = None

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        target = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                with target._lock:
                    target.hits.append(Hit(time.time(), self.command, self.path, dict(self.headers)))
                    behaviour = target.behaviour
                if behaviour.delay:
                    time.sleep(behaviour.delay)
                body = b"" if self.command == "HEAD" else behaviour.body
                self.send_response(behaviour.status)
                self.send_header("Content-Length", str(len(behaviour.body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_HEAD = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _answer

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        if self.tls is not None:
            self._server.socket = self.tls.wrap_socket(self._server.socket, server_side=True,
                                                       do_handshake_on_connect=False)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self._server.server_address[1]}/"

    def set(self, **changes: object) -> None:
        with self._lock:
            self.behaviour = Behaviour(**{**self.behaviour.__dict__, **changes})

    def hits_between(self, start: float, end: float) -> list[Hit]:
        with self._lock:
            return [hit for hit in self.hits if start <= hit.at <= end]

    def hit_times(self) -> list[float]:
        with self._lock:
            return [hit.at for hit in self.hits]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
