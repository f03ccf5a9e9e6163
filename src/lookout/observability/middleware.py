"""/healthz, /readyz and /metrics on the API, answered before host validation and sessions.

Kubelet probes and Prometheus reach pods by IP, which ALLOWED_HOSTS rightly does not list.
"""

import re
import time
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from lookout.observability.exposition import metrics_payload
from lookout.observability.health import broker_ok, database_ok, metrics_token_ok
from lookout.observability.metrics import HTTP_DURATION, HTTP_REQUESTS

_KNOWN_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
_PROXY_HEADERS = ("X-Forwarded-For", "Forwarded", "X-Real-IP")
_ROUTE_PARAM = re.compile(r"\(\?P<(\w+)>[^)]*\)")


def healthz() -> HttpResponse:
    return JsonResponse({"status": "ok"})


def readyz() -> HttpResponse:
    db_ok, db_detail = database_ok()
    _, broker_detail = broker_ok()
    # The broker is reported, not required: monitors can be managed while it is down.
    return JsonResponse({"status": "ok" if db_ok else "unavailable", "database": db_detail,
                         "broker": broker_detail}, status=200 if db_ok else 503)


def metrics(request: HttpRequest) -> HttpResponse:
    if not metrics_token_ok(request.headers.get("Authorization")):
        return HttpResponse("metrics need the bearer token (LOOKOUT_METRICS_TOKEN)\n", status=401,
                            content_type="text/plain", headers={"WWW-Authenticate": "Bearer"})
    if not settings.LOOKOUT_METRICS_TOKEN and any(name in request.headers for name in _PROXY_HEADERS):
        # Prometheus scrapes the pod directly; a request that came through an Ingress or proxy is from outside.
        return HttpResponse("metrics are not served through a proxy unless LOOKOUT_METRICS_TOKEN is set\n",
                            status=403, content_type="text/plain")
    body, content_type = metrics_payload(request.headers.get("Accept", ""), include_monitors=False)
    return HttpResponse(body, content_type=content_type)


class OperationalEndpointsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method in ("GET", "HEAD"):
            if request.path == "/healthz":
                return healthz()
            if request.path == "/readyz":
                return readyz()
            if request.path == "/metrics":
                return metrics(request)
        return self.get_response(request)


def route_template(request: HttpRequest) -> str:
    """`api/v1/monitors/{pk}/`: the matched route, never the raw path (bounded label values)."""
    match = getattr(request, "resolver_match", None)
    if match is None or not match.route:
        return "unmatched"
    return "/" + _ROUTE_PARAM.sub(r"{\1}", match.route).replace("^", "").replace("$", "")


class RequestMetricsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        route = route_template(request)
        method = request.method if request.method in _KNOWN_METHODS else "other"
        HTTP_DURATION.labels(route=route, method=method).observe(time.perf_counter() - started)
        HTTP_REQUESTS.labels(route=route, method=method, status=str(response.status_code)).inc()
        return response
