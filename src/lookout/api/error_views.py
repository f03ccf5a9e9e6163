"""Django's own error pages, in the API's one error format (lookout.api.errors): what DRF never sees.

An unknown route, a Host header not in ALLOWED_HOSTS, a body over DATA_UPLOAD_MAX_MEMORY_SIZE, a failed CSRF
check outside DRF and an unexpected exception are answered by Django itself (handler400/403/404/500 in
lookout.config.urls, CSRF_FAILURE_VIEW), as HTML unless these views answer instead. Django still logs each one
(django.request, django.security) before calling them; none of them shows a traceback or the exception's text.
"""

import sys

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, JsonResponse

from lookout.api.errors import error_body
from lookout.api.middleware import DATABASE_DOWN, database_unavailable


def _error(status: int, *, detail: str, code: str) -> JsonResponse:
    return JsonResponse(error_body(detail=detail, code=code), status=status)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    # Django reports every SuspiciousOperation here, the too-large body among them: its own status, 413.
    if isinstance(exception, RequestDataTooBig):
        return _error(413, detail="Request body too large.", code="too_large")
    return _error(400, detail="Bad request.", code="bad_request")


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return _error(403, detail="You do not have permission to perform this action.", code="permission_denied")


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return _error(404, detail="Not found.", code="not_found")


def server_error(request: HttpRequest) -> JsonResponse:
    # Django calls this while handling the exception. Views' database errors are answered by
    # DatabaseUnavailableMiddleware already; this catches those raised in a middleware (a session save).
    if isinstance(sys.exc_info()[1], DATABASE_DOWN):
        return database_unavailable()
    return _error(500, detail="Internal server error.", code="server_error")


def csrf_failure(request: HttpRequest, reason: str = "") -> JsonResponse:
    return _error(403, detail="CSRF verification failed.", code="csrf_failed")
