"""The metrics and health port of the worker and beat processes (LOOKOUT_METRICS_PORT, LOOKOUT_METRICS_HOST).

/healthz is liveness (restart me), /readyz readiness (a dependency is down; I wait for it), /metrics the scrape.
"""

import logging
import socket
import socketserver
import threading
from collections.abc import Callable, Iterable
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from django.conf import settings

from lookout.observability.exposition import metrics_payload
from lookout.observability.health import metrics_token_ok

logger = logging.getLogger(__name__)

HealthCheck = Callable[[], tuple[bool, str]]
# Beat serves the per-monitor series only while it dispatches, so a hot standby never doubles them.
IncludeMonitors = bool | Callable[[], bool]


class _ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
    # A scrape of beat's per-monitor series can take seconds at 100k monitors: /healthz must not queue behind it.
    daemon_threads = True


class _ThreadingServer6(_ThreadingServer):
    address_family = socket.AF_INET6  # an IPv6 host such as ::1 (LOOKOUT_METRICS_HOST)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # scrapes every few seconds are not news
        pass


def _check_answer(check: HealthCheck, start_response: StartResponse) -> Iterable[bytes]:
    try:
        healthy, detail = check()
    except Exception as exc:  # a check that cannot decide says so, with a 503
        logger.exception("health check failed")
        healthy, detail = False, f"check failed: {exc}"
    start_response("200 OK" if healthy else "503 Service Unavailable", [("Content-Type", "text/plain")])
    return [f"{detail}\n".encode()]


def _shard(query: str) -> tuple[int, int] | None:
    """`shard=i&of=n` (both or neither): the per-monitor series of monitors whose id % n == i."""
    values = parse_qs(query)
    if "shard" not in values and "of" not in values:
        return None
    try:
        shard, of = int(values["shard"][0]), int(values["of"][0])
    except (KeyError, ValueError):
        raise ValueError("shard=i&of=n: two integers, 0 <= i < n") from None
    if not 0 <= shard < of:
        raise ValueError("shard=i&of=n: two integers, 0 <= i < n")
    if of != settings.LOOKOUT_METRICS_SHARDS:
        raise ValueError(f"of={of}: this installation renders LOOKOUT_METRICS_SHARDS={settings.LOOKOUT_METRICS_SHARDS}"
                         " shards")
    return shard, of


def metrics_app(*, include_monitors: IncludeMonitors, health: HealthCheck,
                readiness: HealthCheck | None = None) -> WSGIApplication:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/healthz":
            return _check_answer(health, start_response)
        if path == "/readyz":
            return _check_answer(readiness or health, start_response)
        if path == "/metrics":
            if not metrics_token_ok(environ.get("HTTP_AUTHORIZATION")):
                start_response("401 Unauthorized", [("Content-Type", "text/plain"), ("WWW-Authenticate", "Bearer")])
                return [b"metrics need the bearer token (LOOKOUT_METRICS_TOKEN)\n"]
            gzipped = "gzip" in environ.get("HTTP_ACCEPT_ENCODING", "")  # Prometheus asks for it
            try:
                shard = _shard(environ.get("QUERY_STRING", ""))
            except ValueError as exc:
                start_response("400 Bad Request", [("Content-Type", "text/plain")])
                return [f"{exc}\n".encode()]
            try:
                monitors = include_monitors() if callable(include_monitors) else include_monitors
                body, content_type = metrics_payload(environ.get("HTTP_ACCEPT", ""), include_monitors=monitors,
                                                     gzipped=gzipped, shard=shard)
            except Exception:
                logger.exception("metrics scrape failed")
                start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
                return [b"metrics unavailable, see the process log\n"]
            headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
            start_response("200 OK", headers + ([("Content-Encoding", "gzip")] if gzipped else []))
            return [body]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found: try /metrics, /healthz or /readyz\n"]

    return app


def metrics_server_start(*, port: int, include_monitors: IncludeMonitors, health: HealthCheck,
                         readiness: HealthCheck | None = None, host: str = "0.0.0.0") -> WSGIServer | None:
    """Serve in a daemon thread (a greenlet once gevent has patched threading); 0 disables the port."""
    if port == 0:
        return None
    try:
        app = metrics_app(include_monitors=include_monitors, health=health, readiness=readiness)
        server_class = _ThreadingServer6 if ":" in host else _ThreadingServer
        server = make_server(host, port, app, server_class=server_class, handler_class=_QuietHandler)
    except OSError as exc:
        logger.error("metrics port %s unavailable (%s): this process serves no metrics", port, exc)
        return None
    threading.Thread(target=server.serve_forever, name="lookout-metrics", daemon=True).start()
    logger.info("metrics and health on http://%s:%s/metrics", host, port)
    return server
