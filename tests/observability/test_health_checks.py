"""What the worker's and beat's /healthz and /readyz decide, case by case (the real outages: test_liveness_outages)."""

import time
import urllib.error
import urllib.request
from types import SimpleNamespace

import pytest

from lookout import process_signals
from lookout.observability.liveness import CONSUMER_STALE_SECONDS, ConsumerState, kombu_retry_sleep_cooperative
from lookout.observability.server import metrics_server_start
from lookout.scheduling import lock as lock_module
from support.stack import free_port


def fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode().strip()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode().strip()


# --- worker -----------------------------------------------------------------------------------------------------


def test_a_worker_whose_consumer_loop_turns_is_healthy_and_ready():
    state = ConsumerState()
    state.connecting()
    state.connection_made()
    state.loop_turned()

    assert state.health() == (True, "ok")
    assert state.readiness() == (True, "ok: consuming")


def test_a_worker_reconnecting_to_the_broker_stays_alive_but_is_not_ready(monkeypatch):
    state = ConsumerState()
    state.connection_made()
    state.connection_lost()
    state.connecting()
    # However long the broker stays away: restarting the pod would not bring it back.
    monkeypatch.setattr(state, "last_loop", time.monotonic() - 10 * CONSUMER_STALE_SECONDS)
    monkeypatch.setattr(state, "connecting_since", time.monotonic() - 10 * CONSUMER_STALE_SECONDS)

    healthy, detail = state.health()

    assert healthy and detail.startswith("reconnecting to the broker for 600s")
    assert state.readiness() == (False, "broker unavailable: reconnecting")


def test_a_worker_whose_consumer_loop_stopped_while_connected_is_unhealthy(monkeypatch):
    state = ConsumerState()
    state.connection_made()
    monkeypatch.setattr(state, "last_loop", time.monotonic() - CONSUMER_STALE_SECONDS - 5)

    healthy, detail = state.health()

    assert not healthy and detail.startswith("stuck: the consumer loop has not turned for 65s")
    assert state.loop_age() > CONSUMER_STALE_SECONDS


def test_kombu_reconnect_back_off_is_left_alone_without_gevent(monkeypatch):
    from kombu.utils import functional

    original = functional.sleep
    kombu_retry_sleep_cooperative()  # this test process is not monkey-patched

    assert functional.sleep is original


# --- beat -------------------------------------------------------------------------------------------------------


class FakeLock:
    requires_lock = True
    tried = True

    def __init__(self, held: bool) -> None:
        self.held = held


@pytest.mark.parametrize(("held", "tick_age", "expected"), [
    (True, 1, (True, "active: holds the scheduler lock")),
    (False, 1, (True, "standby: waiting for the scheduler lock")),
    (True, 120, (False, "stale: no scheduler tick for 120s")),
])
def test_beat_is_unhealthy_only_when_its_scheduler_loop_stopped(monkeypatch, held, tick_age, expected):
    monkeypatch.setattr(lock_module, "_current", FakeLock(held))
    service = SimpleNamespace(_last_tick=time.monotonic() - tick_age)

    assert process_signals.beat_health(service) == expected


def test_beat_before_its_first_tick_is_starting(monkeypatch):
    monkeypatch.setattr(lock_module, "_current", None)

    assert process_signals.beat_health(SimpleNamespace(_last_tick=None)) == (True, "starting")


# --- the port ---------------------------------------------------------------------------------------------------


@pytest.fixture
def serve():
    servers = []

    def start(**checks) -> str:
        port = free_port()
        servers.append(metrics_server_start(port=port, host="127.0.0.1", include_monitors=False, **checks))
        return f"http://127.0.0.1:{port}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_readyz_answers_the_readiness_check_and_healthz_the_liveness_check(serve):
    base = serve(health=lambda: (True, "reconnecting"), readiness=lambda: (False, "broker unavailable"))

    assert fetch(f"{base}/healthz") == (200, "reconnecting")
    assert fetch(f"{base}/readyz") == (503, "broker unavailable")


def test_a_check_that_raises_answers_503_with_the_reason(serve):
    def broken() -> tuple[bool, str]:
        raise RuntimeError("no idea")

    base = serve(health=broken)

    assert fetch(f"{base}/healthz") == (503, "check failed: no idea")
    assert fetch(f"{base}/readyz") == (503, "check failed: no idea")


def test_healthz_answers_while_a_slow_scrape_is_running(serve, monkeypatch, settings):
    from lookout.observability import server

    settings.LOOKOUT_METRICS_TOKEN = ""

    def slow_payload(accept, *, include_monitors):
        time.sleep(3)
        return b"", "text/plain"

    monkeypatch.setattr(server, "metrics_payload", slow_payload)
    base = serve(health=lambda: (True, "ok"))
    import threading

    scrape = threading.Thread(target=fetch, args=(f"{base}/metrics",))
    scrape.start()
    time.sleep(0.2)
    started = time.monotonic()

    assert fetch(f"{base}/healthz") == (200, "ok")
    assert time.monotonic() - started < 1
    scrape.join()


# --- the API's /metrics behind an Ingress -------------------------------------------------------------------------


def test_without_a_token_the_api_serves_metrics_only_to_direct_requests(client, settings):
    settings.LOOKOUT_METRICS_TOKEN = ""

    assert client.get("/metrics").status_code == 200  # Prometheus, scraping the pod
    proxied = client.get("/metrics", HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert proxied.status_code == 403
    assert b"lookout_" not in proxied.content
    assert client.get("/metrics", HTTP_FORWARDED="for=203.0.113.9").status_code == 403


def test_with_a_token_metrics_may_be_scraped_through_a_proxy(client, settings):
    settings.LOOKOUT_METRICS_TOKEN = "scrape-token"

    assert client.get("/metrics", HTTP_X_FORWARDED_FOR="10.0.0.1").status_code == 401
    assert client.get("/metrics", HTTP_X_FORWARDED_FOR="10.0.0.1",
                      HTTP_AUTHORIZATION="Bearer scrape-token").status_code == 200
