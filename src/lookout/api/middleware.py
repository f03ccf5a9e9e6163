"""The database being down is a 503 with Retry-After on every API endpoint, never a 500 with a traceback.

Django opens its connection per request (and checks a persistent one before reuse: conn_health_checks), so once
the database is back the next request simply succeeds; nothing here holds state.
"""

import logging
from collections.abc import Callable

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from psycopg_pool import PoolTimeout

from lookout.api.errors import error_body

RETRY_AFTER_SECONDS = 5
# PoolTimeout: every pooled connection is taken and none comes back within the pool's timeout (LOOKOUT_DB_POOL_SIZE).
DATABASE_DOWN = (OperationalError, InterfaceError, PoolTimeout)

logger = logging.getLogger(__name__)


def database_unavailable() -> JsonResponse:
    return JsonResponse(error_body(detail="The database is unavailable; try again shortly.",
                                   code="database_unavailable"),
                        status=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


class DatabaseUnavailableMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, DATABASE_DOWN):
            return None  # Django's 500 (lookout.api.error_views.server_error), and its log
        # One line, not a traceback per request for the length of an outage.
        logger.warning("database unavailable: %s %s: %s", request.method, request.path,
                       str(exception).strip().splitlines()[0] if str(exception).strip() else type(exception).__name__)
        return database_unavailable()
