"""The core loop with real processes: `lookout api`, `worker` and `beat` on PostgreSQL and RabbitMQ.

Every claim is read from the target server's own log of hits, not from Lookout's view of itself.
"""

import statistics
import time

import pytest
import requests

from support.http_target import HttpTarget
from support.stack import LookoutStack, wait_until

pytestmark = pytest.mark.e2e


def create_monitor(stack: LookoutStack, target: HttpTarget, **fields) -> dict:
    response = stack.api("POST", "monitors/", json={"name": "e2e", "url": target.url, **fields})
    assert response.status_code == 201, response.text
    return response.json()


def gaps(times: list[float]) -> list[float]:
    return [later - earlier for earlier, later in zip(times, times[1:], strict=False)]


def test_probes_arrive_at_the_monitors_interval(stack, http_target, report):
    create_monitor(stack, http_target, interval=2)
    wait_until(lambda: len(http_target.hits) >= 7, timeout=30, what="7 probes")
    intervals = gaps(http_target.hit_times()[:7])
    errors = [abs(gap - 2) for gap in intervals]
    report(f"cadence at interval 2 s: gaps {[round(g, 3) for g in intervals]}, "
           f"mean error {statistics.mean(errors) * 1000:.0f} ms, max error {max(errors) * 1000:.0f} ms")
    assert statistics.mean(intervals) == pytest.approx(2, abs=0.25)
    assert max(errors) < 0.9


def test_a_patched_interval_takes_effect_without_a_restart(stack, http_target, report):
    monitor = create_monitor(stack, http_target, interval=6)
    wait_until(lambda: len(http_target.hits) >= 1, timeout=15, what="the first probe")
    time.sleep(2.5)
    patched_at = time.time()
    assert stack.api("PATCH", f"monitors/{monitor['id']}/", json={"interval": 2}).status_code == 200
    # The last probe is 2.5 s old, so on a 2 s interval the next one is due at once, while the old
    # schedule's is 3.5 s away: the delay to the first hit is how long beat takes to see the change.
    first = wait_until(lambda: [t for t in http_target.hit_times() if t > patched_at], timeout=6,
                       what="a probe on the new interval")[0]
    wait_until(lambda: len([t for t in http_target.hit_times() if t > patched_at]) >= 4, timeout=15,
               what="probes on the new interval")
    after = [t for t in http_target.hit_times() if t > patched_at][:4]
    report(f"interval change 6 s -> 2 s: first effect {first - patched_at:.2f} s after the PATCH, "
           f"then gaps {[round(g, 3) for g in gaps(after)]}")
    assert first - patched_at < 2.5
    assert statistics.mean(gaps(after)) == pytest.approx(2, abs=0.3)


def test_pause_stops_probing_and_resume_restarts_it(stack, http_target):
    monitor = create_monitor(stack, http_target, interval=1)
    wait_until(lambda: len(http_target.hits) >= 2, timeout=15, what="probes before the pause")
    paused = stack.api("POST", f"monitors/{monitor['id']}/pause/")
    assert paused.status_code == 200 and paused.json()["status"] == "paused"
    time.sleep(1)  # a probe already in flight may still land
    quiet_from = time.time()
    time.sleep(4)
    assert http_target.hits_between(quiet_from, time.time()) == []
    assert stack.api("GET", f"monitors/{monitor['id']}/").json()["status"] == "paused"

    resumed_at = time.time()
    assert stack.api("POST", f"monitors/{monitor['id']}/resume/").status_code == 200
    wait_until(lambda: len(http_target.hits_between(resumed_at, time.time())) >= 2, timeout=10,
               what="probes after resume")


def test_delete_stops_probing_and_removes_the_periodic_task(stack, http_target):
    monitor = create_monitor(stack, http_target, interval=1)
    wait_until(lambda: len(http_target.hits) >= 2, timeout=15, what="probes before the delete")
    assert stack.periodic_task_count(f"monitor:{monitor['id']}") == 1
    assert stack.api("DELETE", f"monitors/{monitor['id']}/").status_code == 204
    assert stack.periodic_task_count(f"monitor:{monitor['id']}") == 0
    time.sleep(1)
    quiet_from = time.time()
    time.sleep(4)
    assert http_target.hits_between(quiet_from, time.time()) == []
    assert stack.api("GET", f"monitors/{monitor['id']}/").status_code == 404


def test_check_now_reaches_success(stack, http_target):
    monitor = create_monitor(stack, http_target, interval=3600)
    wait_until(lambda: len(http_target.hits) >= 1, timeout=15, what="the first probe")
    before = len(http_target.hits)
    queued = stack.api("POST", f"monitors/{monitor['id']}/check/")
    assert queued.status_code == 202
    task_id = queued.json()["task_id"]
    states = []

    def finished() -> dict | None:
        body = stack.api("GET", f"tasks/{task_id}/").json()
        states.append(body["state"])
        return body if body["state"] in ("SUCCESS", "FAILURE") else None

    body = wait_until(finished, timeout=20, interval=0.05, what="the check to finish")
    assert body["state"] == "SUCCESS", body
    assert body["result"]["success"] is True and body["result"]["status_code"] == 200
    assert body["error"] is None
    assert len(http_target.hits) == before + 1
    assert set(states) <= {"PENDING", "STARTED", "SUCCESS"}
    results = stack.api("GET", f"results/?monitor={monitor['id']}").json()["results"]
    assert results[0]["task_id"] == task_id


def test_a_503_target_is_recorded_as_a_failure_and_the_monitor_goes_down(stack, http_target):
    http_target.set(status=503, body=b"maintenance")
    monitor = create_monitor(stack, http_target, interval=2)
    wait_until(lambda: stack.api("GET", f"monitors/{monitor['id']}/").json()["status"] == "down", timeout=15,
               what="the monitor to go down")
    result = stack.api("GET", f"results/?monitor={monitor['id']}").json()["results"][0]
    assert result["success"] is False
    assert result["status_code"] == 503
    assert "503" in result["error"]
    assert len(http_target.hits) >= 1


def test_metrics_ports_serve_fleet_and_per_monitor_series_only_with_the_token(stack, http_target):
    monitor = create_monitor(stack, http_target, interval=1)
    wait_until(lambda: stack.api("GET", f"monitors/{monitor['id']}/").json()["status"] == "up", timeout=15,
               what="the monitor to be up")
    auth = {"Authorization": f"Bearer {stack.metrics_token}"}
    for port in (stack.worker_metrics_port, stack.beat_metrics_port):
        assert requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).status_code == 401
    worker = requests.get(f"http://127.0.0.1:{stack.worker_metrics_port}/metrics", headers=auth, timeout=5).text
    assert 'lookout_probes_total{region="home",result="success",type="http"}' in worker
    assert "lookout_probe_duration_seconds_bucket" in worker
    assert "monitor_id" not in worker

    def beat_says_up() -> bool:
        text = requests.get(f"http://127.0.0.1:{stack.beat_metrics_port}/metrics", headers=auth, timeout=5).text
        return f'lookout_monitor_up{{monitor_id="{monitor["id"]}"}} 1.0' in text

    wait_until(beat_says_up, timeout=20, what="beat's per-monitor series")
    assert requests.get(f"{stack.url}/metrics", timeout=5).status_code == 401
    assert requests.get(f"{stack.url}/metrics", headers=auth, timeout=5).status_code == 200


def test_readyz_reports_the_broker_and_the_api_token_endpoint_works(stack):
    ready = requests.get(f"{stack.url}/readyz", timeout=5)
    assert ready.status_code == 200
    assert ready.json() == {"status": "ok", "database": "ok", "broker": "ok"}
    assert requests.get(f"{stack.url}/healthz", timeout=5).json() == {"status": "ok"}
    assert requests.get(f"{stack.url}/api/v1/monitors/", timeout=5).status_code == 401


def test_slow_targets_neither_block_other_probes_nor_hold_database_connections(stack, report):
    slow, fast = HttpTarget(), HttpTarget()
    try:
        slow.set(delay=4)
        for index in range(10):
            create_monitor(stack, slow, name=f"slow-{index}", interval=30, timeout=8)
        wait_until(lambda: len(slow.hits) >= 10, timeout=15, what="ten probes waiting on the slow target")
        # The worker has 4 pooled database connections (LOOKOUT_DB_POOL_SIZE in the stack): had a probe kept
        # its connection while waiting 4 s on the target, the 5th probe could not have reached it before then.
        first_ten = sorted(slow.hit_times())[:10]
        spread = first_ten[-1] - first_ten[0]
        in_use = []
        for _ in range(5):
            in_use.append(stack.connections_of("worker"))
            time.sleep(0.2)
        create_monitor(stack, fast, interval=1)
        wait_until(lambda: len(fast.hits) >= 3, timeout=10, what="the fast monitor's probes")
        report(f"10 probes on a 4 s target reached it within {spread:.2f} s of each other through a pool of "
               f"4 connections; worker connections meanwhile: {in_use}")
        assert spread < 3.5
        assert max(in_use) <= 4
        fast_gaps = gaps(fast.hit_times()[:3])
        assert max(fast_gaps) < 1.6, fast_gaps
    finally:
        slow.close()
        fast.close()


def test_a_worker_killed_mid_probe_has_its_probe_redelivered_and_recorded(stack, http_target):
    http_target.set(delay=3)
    monitor = create_monitor(stack, http_target, interval=120, timeout=10)
    wait_until(lambda: len(http_target.hits) >= 1, timeout=15, what="the probe to reach the target")
    stack.processes["worker"].kill()  # SIGKILL: no chance to finish or acknowledge
    stack.processes["worker"].wait()
    http_target.set(delay=0)
    stack.start("worker", "worker", LOOKOUT_METRICS_PORT=str(stack.worker_metrics_port))
    # The unacknowledged message comes back to the new worker well before it expires (one interval).
    wait_until(lambda: len(http_target.hits) >= 2, timeout=30, what="the redelivered probe")
    results = wait_until(lambda: stack.api("GET", f"results/?monitor={monitor['id']}").json()["results"],
                         timeout=15, what="the recorded result")
    assert results[0]["success"] is True


def test_a_push_monitor_is_up_while_heartbeats_arrive_and_down_when_they_stop(stack):
    monitor = stack.api("POST", "monitors/", json={"name": "cron job", "type": "push", "interval": 2,
                                                    "grace": 1}).json()
    for _ in range(3):
        assert requests.post(monitor["push_url"], timeout=5).status_code == 200
        time.sleep(1)
    assert stack.api("GET", f"monitors/{monitor['id']}/").json()["status"] == "up"
    stopped_at = time.time()
    wait_until(lambda: stack.api("GET", f"monitors/{monitor['id']}/").json()["status"] == "down", timeout=15,
               what="the push monitor to go down")
    # Down once interval + grace (3 s) passed, found by beat's sweep (every second here).
    assert time.time() - stopped_at >= 2.5
    failure = stack.api("GET", f"results/?monitor={monitor['id']}&success=false").json()["results"][0]
    assert "no heartbeat" in failure["error"]
