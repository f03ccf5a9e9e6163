"""Liveness that means something, with real processes: a broker or database outage is reported, not fatal.

The worker reaches RabbitMQ, and beat PostgreSQL, through a proxy the test cuts (every connection reset, new ones
refused) and restores. Throughout, /healthz must stay 200 (Kubernetes would otherwise restart every pod and
crash-loop them), /readyz and the metrics must report the outage, and probing must resume by itself afterwards.
"""

import time
import uuid
from urllib.parse import urlsplit

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from support.http_target import HttpTarget
from support.stack import LookoutStack, wait_until
from support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.e2e

OUTAGE_SECONDS = 8


@pytest.fixture(scope="module")
def proxies():
    made = {"broker": TcpProxy("127.0.0.1", 5672), "database": TcpProxy("127.0.0.1", 5432)}
    yield made
    for proxy in made.values():
        proxy.close()


def through(url: str, proxy: TcpProxy) -> str:
    parts = urlsplit(url)
    return parts._replace(netloc=parts.netloc.replace(f":{parts.port}", f":{proxy.port}")).geturl()


@pytest.fixture(scope="module")
def stack(tmp_path_factory, proxies):
    stack = LookoutStack(tmp_path_factory.mktemp("outage-stack"), name=f"lookout_outage_{uuid.uuid4().hex[:8]}")
    try:
        yield stack.up(worker={"CELERY_BROKER_URL": through(stack.env["CELERY_BROKER_URL"], proxies["broker"])},
                       beat={"DATABASE_URL": through(stack.database_url, proxies["database"])})
    finally:
        stack.down()


@pytest.fixture(scope="module")
def target(stack):
    target = HttpTarget()
    response = stack.api("POST", "monitors/", json={"name": "outage", "url": target.url, "interval": 1})
    assert response.status_code == 201, response.text
    wait_until(lambda: len(target.hits) >= 2, timeout=20, what="probes before the outage")
    yield target
    target.close()


def status(port: int, path: str) -> tuple[int, str]:
    try:
        # Kubelet gives a probe 1 s by default (the chart: 5 s); a blocked event loop shows up as a timeout.
        response = requests.get(f"http://127.0.0.1:{port}{path}", timeout=2)
        return response.status_code, response.text.strip()
    except requests.RequestException as exc:
        return 0, str(exc)


def gauge(stack: LookoutStack, process: str, name: str) -> float | None:
    for family in text_string_to_metric_families(stack.metrics(process)):
        for sample in family.samples:
            if sample.name == name:
                return sample.value
    return None


def watch(stack: LookoutStack, port: int, seconds: float) -> list[tuple[int, str]]:
    """/healthz every 0.25 s for `seconds`."""
    seen, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        stack.assert_running()
        seen.append(status(port, "/healthz"))
        time.sleep(0.25)
    return seen


def test_a_broker_outage_keeps_the_worker_alive_and_reported(stack, proxies, target):
    port = stack.worker_metrics_port
    pid = stack.processes["worker"].pid
    assert status(port, "/readyz") == (200, "ok: consuming")
    # Celery's consumer loop (synloop, under gevent) reports each turn: it wakes at least every 2 s.
    assert gauge(stack, "worker", "lookout_worker_consumer_loop_age_seconds") < 3

    proxies["broker"].cut()
    try:
        wait_until(lambda: status(port, "/readyz")[0] == 503, timeout=15, what="the worker to notice")
        assert gauge(stack, "worker", "lookout_worker_broker_connected") == 0
        health = watch(stack, port, OUTAGE_SECONDS)
    finally:
        proxies["broker"].restore()

    assert {code for code, _ in health} == {200}, health
    assert any("reconnecting to the broker" in body for _, body in health)
    wait_until(lambda: status(port, "/readyz")[0] == 200, timeout=40, what="the worker to reconnect")
    assert gauge(stack, "worker", "lookout_worker_broker_connected") == 1
    restored = time.time()
    wait_until(lambda: len(target.hits_between(restored, time.time())) >= 2, timeout=20, what="probes to resume")
    assert stack.processes["worker"].pid == pid and stack.processes["worker"].poll() is None


def test_a_database_outage_keeps_beat_alive_and_reported(stack, proxies, target):
    port = stack.beat_metrics_port
    assert status(port, "/healthz") == (200, "active: holds the scheduler lock")
    assert gauge(stack, "beat", "lookout_monitor_collector_up") == 1

    proxies["database"].cut()
    try:
        wait_until(lambda: status(port, "/healthz")[1].startswith("standby"), timeout=15,
                   what="beat to stop dispatching")
        cut_at = time.time()
        assert status(port, "/readyz")[0] == 503
        assert gauge(stack, "beat", "lookout_beat_lock_held") == 0
        # Only the beat holding the lock serves per-monitor series; the scrape itself still answers.
        assert gauge(stack, "beat", "lookout_monitor_up") is None
        health = watch(stack, port, OUTAGE_SECONDS)
        assert len(target.hits_between(cut_at + 2, time.time())) == 0, "a beat without the lock dispatched"

        # A beat (re)started while the database is down waits for it too, instead of exiting into a crash loop.
        beat = stack.processes["beat"]
        beat.terminate()
        beat.wait(timeout=20)
        stack.start("beat", "beat", LOOKOUT_METRICS_PORT=str(port),
                    DATABASE_URL=through(stack.database_url, proxies["database"]))
        wait_until(lambda: status(port, "/healthz")[0] == 200, timeout=30, what="the new beat's /healthz")
        health += watch(stack, port, 4)
        assert status(port, "/readyz")[0] == 503
    finally:
        proxies["database"].restore()

    assert {code for code, _ in health} == {200}, health
    wait_until(lambda: status(port, "/healthz") == (200, "active: holds the scheduler lock"), timeout=30,
               what="beat to take the lock again")
    assert status(port, "/readyz")[0] == 200
    restored = time.time()
    wait_until(lambda: len(target.hits_between(restored, time.time())) >= 2, timeout=20, what="probes to resume")
    wait_until(lambda: gauge(stack, "beat", "lookout_monitor_up") == 1, timeout=15, what="per-monitor series")
    assert stack.processes["beat"].poll() is None and stack.processes["beat"] is not beat
