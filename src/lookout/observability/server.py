"""The metrics and health port of the worker and beat processes (LOOKOUT_METRICS_PORT)."""

import logging
import threading
from collections.abc import Callable, Iterable
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from lookout.observability.exposition import metrics_payload
from lookout.observability.health import metrics_token_ok

logger = logging.getLogger(__name__)

HealthCheck = Callable[[], tuple[bool, str]]


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # scrapes every few seconds are not news
        pass


def metrics_app(*, include_monitors: bool, health: HealthCheck) -> Callable:
    def app(environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/healthz":
            healthy, detail = health()
            start_response("200 OK" if healthy else "503 Service Unavailable", [("Content-Type", "text/plain")])
            return [f"{detail}\n".encode()]
        if path == "/metrics":
            if not metrics_token_ok(environ.get("HTTP_AUTHORIZATION")):
                start_response("401 Unauthorized", [("Content-Type", "text/plain"), ("WWW-Authenticate", "Bearer")])
                return [b"metrics need the bearer token (LOOKOUT_METRICS_TOKEN)\n"]
            try:
                body, content_type = metrics_payload(environ.get("HTTP_ACCEPT", ""),
                                                     include_monitors=include_monitors)
            except Exception:
                logger.exception("metrics scrape failed")
                start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
                return [b"metrics unavailable, see the process log\n"]
            start_response("200 OK", [("Content-Type", content_type)])
            return [body]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found: try /metrics or /healthz\n"]

    return app


def metrics_server_start(*, port: int, include_monitors: bool, health: HealthCheck,
                         host: str = "0.0.0.0") -> WSGIServer | None:
    """Serve in a daemon thread (a greenlet once gevent has patched threading); 0 disables the port."""
    if port == 0:
        return None
    try:
        server = make_server(host, port, metrics_app(include_monitors=include_monitors, health=health),
                             handler_class=_QuietHandler)
    except OSError as exc:
        logger.error("metrics port %s unavailable (%s): this process serves no metrics", port, exc)
        return None
    threading.Thread(target=server.serve_forever, name="lookout-metrics", daemon=True).start()
    logger.info("metrics and health on http://%s:%s/metrics", host, port)
    return server
