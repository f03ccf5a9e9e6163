"""An HTTP server on 127.0.0.1 that answers by the probing region: each probe names its region in its User-Agent
(`Lookout/<version> (region eu-west)`), and a path fails (503) for the regions a test sets, as a service reachable
from some places and not others would."""

import re
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_REGION = re.compile(r"\(region ([a-z][a-z0-9-]*)\)")


@dataclass(frozen=True)
class RegionalHit:
    at: float
    path: str
    region: str  # "" when the User-Agent names none
    status: int
    headers: dict[str, str]


class RegionalTarget:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failing: dict[str, set[str]] = {}
        self.hits: list[RegionalHit] = []
        target = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                found = _REGION.search(self.headers.get("User-Agent", ""))
                region = found.group(1) if found else ""
                with target._lock:
                    status = 503 if region in target._failing.get(self.path, set()) else 200
                    target.hits.append(RegionalHit(time.time(), self.path, region, status, dict(self.headers)))
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def fail(self, path: str, *regions: str) -> None:
        """From now on `path` answers 503 to these regions (none: 200 to every region)."""
        with self._lock:
            self._failing[path] = set(regions)

    def hits_of(self, path: str, *, since: float = 0.0) -> list[RegionalHit]:
        with self._lock:
            return [hit for hit in self.hits if hit.path == path and hit.at >= since]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
