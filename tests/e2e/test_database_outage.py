"""The database down, with a real `lookout api` process: every API endpoint answers 503 with Retry-After in the
error format (never a 500, never a traceback), and the API recovers by itself once the database is back.

The API alone reaches PostgreSQL through a proxy the test cuts (every connection reset, new ones refused) and
restores; worker and beat use the database directly and are not disturbed.
"""

import time
import uuid

import pytest
import requests

from support.stack import LookoutStack, wait_until
from support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.e2e

RECOVERY_LIMIT_SECONDS = 30


@pytest.fixture(scope="module")
def proxy():
    proxy = TcpProxy("127.0.0.1", 5432)
    yield proxy
    proxy.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory, proxy):
    stack = LookoutStack(tmp_path_factory.mktemp("db-outage"), name=f"lookout_dbout_{uuid.uuid4().hex[:8]}")
    try:
        yield stack.up(api={"DATABASE_URL": proxy.through(stack.database_url)})
    finally:
        stack.down()


def requests_of(monitor_id: int) -> dict[str, tuple[str, str, dict]]:
    return {
        "list": ("GET", "monitors/", {}),
        "detail": ("GET", f"monitors/{monitor_id}/", {}),
        "create": ("POST", "monitors/", {"json": {"name": "during", "url": "https://example.com", "interval": 60}}),
        "stats": ("GET", f"monitors/{monitor_id}/stats/", {}),
        "results": ("GET", "results/", {}),
    }


def test_it_answers_503_during_a_database_outage_and_recovers_by_itself(stack, proxy, report):
    created = stack.api("POST", "monitors/", json={"name": "before", "url": "https://example.com", "interval": 60})
    assert created.status_code == 201, created.text
    calls = requests_of(created.json()["id"])
    for name, (method, path, kwargs) in calls.items():
        if method == "GET":
            assert stack.api(method, path, **kwargs).status_code == 200, name

    proxy.cut()
    try:
        for name, (method, path, kwargs) in calls.items():
            for _ in range(2):  # the first request finds its connection reset, the next one cannot connect
                response = stack.api(method, path, **kwargs)
                assert response.status_code == 503, (name, response.status_code, response.text[:300])
                assert response.headers["Content-Type"] == "application/json", (name, response.text[:300])
                assert int(response.headers["Retry-After"]) > 0, name
                body = response.json()
                assert body["code"] == "database_unavailable" and body["detail"], (name, body)
                assert "Traceback" not in response.text
        assert requests.get(f"{stack.url}/readyz", timeout=10).status_code == 503  # readiness, as before
    finally:
        proxy.restore()
    restored = time.monotonic()

    wait_until(lambda: all(stack.api(method, path, **kwargs).status_code == 200
                           for method, path, kwargs in calls.values() if method == "GET"),
               timeout=RECOVERY_LIMIT_SECONDS, interval=0.2, what="the API after the database came back")
    recovery = time.monotonic() - restored
    report(f"API answered 200 again {recovery:.2f} s after the database came back (limit {RECOVERY_LIMIT_SECONDS} s)")
    created_after = stack.api("POST", "monitors/", json={"name": "after", "url": "https://example.com",
                                                          "interval": 60})
    assert created_after.status_code == 201, created_after.text
    stack.assert_running()
    assert "Traceback" not in stack.log("api")
