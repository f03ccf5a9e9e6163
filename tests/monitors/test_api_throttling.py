"""API throttling: per-user, login and push limits counted in the database, one statement per request."""

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from lookout.api.throttling import FixedWindowThrottle, PushThrottle, ScopedThrottle, UserThrottle
from lookout.core.models import RateCounter
from lookout.core.rate_counters import rate_counters_prune
from lookout.monitors import services
from lookout.monitors.spec import MonitorSpec
from lookout.stats.retention import rollups_prune

pytestmark = pytest.mark.django_db

MONITORS = "/api/v1/monitors/"
# 15 s into a minute: a minute's window ends 45 s later.
MINUTE_START = 60 * 100_000


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    """The throttles' time, fixed: a test's requests never straddle a window's edge by chance."""
    fixed = Clock(MINUTE_START + 15)
    monkeypatch.setattr(FixedWindowThrottle, "timer", staticmethod(fixed))
    return fixed


@pytest.fixture
def user_rate(monkeypatch):
    # The throttle classes captured the rates at import; tests set their own.
    monkeypatch.setattr(UserThrottle, "THROTTLE_RATES", {**UserThrottle.THROTTLE_RATES, "user": "3/minute"})


def test_each_user_has_a_request_rate_limit(alice_api, bob_api, clock, user_rate):
    statuses = [alice_api.get(MONITORS).status_code for _ in range(4)]

    assert statuses == [200, 200, 200, 429]
    assert bob_api.get(MONITORS).status_code == 200  # another user's budget is their own


def test_a_refused_request_is_told_when_the_window_ends(alice_api, clock, user_rate):
    for _ in range(3):
        alice_api.get(MONITORS)

    refused = alice_api.get(MONITORS)

    assert refused.status_code == 429
    assert refused["Retry-After"] == "45"
    clock.now += 44.5
    assert alice_api.get(MONITORS)["Retry-After"] == "1"


def test_the_count_starts_again_in_the_next_window(alice_api, clock, user_rate):
    for _ in range(4):
        alice_api.get(MONITORS)

    clock.now = MINUTE_START + 60

    assert [alice_api.get(MONITORS).status_code for _ in range(4)] == [200, 200, 200, 429]


def test_a_users_requests_count_together_whichever_session_sends_them(alice, alice_api, clock, user_rate):
    # A token client and a browser session, as two API processes would see them: one shared counter.
    browser = APIClient()
    browser.force_login(alice)

    statuses = [client.get(MONITORS).status_code for client in (alice_api, browser, alice_api, browser)]

    assert statuses == [200, 200, 200, 429]
    assert RateCounter.objects.get().hits == 4


def test_counting_a_request_is_one_statement(alice_api, clock):
    alice_api.get(MONITORS)  # the counter's row exists from now on; the first request inserts it

    with CaptureQueriesContext(connection) as captured:
        assert alice_api.get(MONITORS).status_code == 200

    throttle = [query["sql"] for query in captured.captured_queries if "ratecounter" in query["sql"]]
    assert len(throttle) == 1, throttle
    assert not [query["sql"] for query in captured.captured_queries if "lookout_cache" in query["sql"]]


def test_password_guessing_is_throttled(alice, clock, monkeypatch):
    monkeypatch.setattr(ScopedThrottle, "THROTTLE_RATES", {**ScopedThrottle.THROTTLE_RATES, "login": "3/minute"})
    client = APIClient()

    statuses = [client.post("/api/v1/auth/token/", {"username": "alice", "password": f"guess-{i}"},
                            format="json").status_code for i in range(4)]

    assert statuses == [400, 400, 400, 429]
    # Even the right password waits: that is what makes guessing slow.
    right = client.post("/api/v1/auth/token/", {"username": "alice", "password": "alice-password-1"}, format="json")
    assert right.status_code == 429


def test_heartbeats_are_limited_per_push_token(alice, client, clock, monkeypatch):
    monkeypatch.setattr(PushThrottle, "THROTTLE_RATES", {**PushThrottle.THROTTLE_RATES, "push": "2/minute"})
    first = services.monitor_create(owner=alice, spec=MonitorSpec(name="first", type="push", interval=60))
    second = services.monitor_create(owner=alice, spec=MonitorSpec(name="second", type="push", interval=60))

    statuses = [client.post(f"/api/v1/push/{first.push_token}").status_code for _ in range(3)]

    assert statuses == [200, 200, 429]
    assert client.post(f"/api/v1/push/{second.push_token}").status_code == 200


def test_counters_of_ended_windows_are_pruned(alice_api, clock):
    alice_api.get(MONITORS)

    assert rate_counters_prune(now=MINUTE_START + 59) == 0
    assert rate_counters_prune(now=MINUTE_START + 60) == 1
    assert not RateCounter.objects.exists()


def test_the_hourly_prune_task_prunes_them(alice_api, clock):
    alice_api.get(MONITORS)

    rollups_prune(now=datetime.fromtimestamp(MINUTE_START + 60, tz=UTC))

    assert not RateCounter.objects.exists()
