"""What /healthz and /readyz report: the process is alive; the database answers; the broker's state."""

import hmac

from django.conf import settings
from django.db import connection

from lookout.config.celery_app import app

# The broker check runs inside /readyz, whose kubelet probe times out after 1 s by default: a slow answer
# there would take the API out of service for a broker outage, which /readyz only reports.
BROKER_CHECK_TIMEOUT = 0.5


def database_ok() -> tuple[bool, str]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True, "ok"
    except Exception as exc:  # any driver error means "not ready"; the message says which
        return False, f"unavailable: {exc}"


def broker_ok() -> tuple[bool, str]:
    try:
        with app.connection_for_write(connect_timeout=BROKER_CHECK_TIMEOUT) as conn:
            # No retry: kombu sleeps 2 s before its first retry, whatever the timeout says. (Seconds as a float:
            # kombu compares them with a clock; celery-types says int.)
            conn.ensure_connection(max_retries=0, timeout=BROKER_CHECK_TIMEOUT)  # type: ignore[arg-type]
        return True, "ok"
    except Exception as exc:  # kombu raises library and socket errors alike
        return False, f"unavailable: {exc}"


def metrics_token_ok(authorization: str | None, token: str | None = None) -> bool:
    """True when no LOOKOUT_METRICS_TOKEN is configured, or the header carries it as a bearer token."""
    expected = settings.LOOKOUT_METRICS_TOKEN if token is None else token
    if not expected:
        return True
    scheme, _, presented = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode(), expected.encode())
