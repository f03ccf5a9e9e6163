"""Alerting with real processes: `lookout api`, `worker` and `beat` on PostgreSQL and RabbitMQ, alerts received
by a real HTTP server (webhook, Slack) and a real SMTP server.

Claims are read from the receivers' and the target's own logs, not from Lookout's view of itself.
"""

import time
from datetime import datetime

import pytest
import requests

from support.http_target import HttpTarget
from support.receivers import Answer, SmtpReceiver, WebhookReceiver
from support.stack import LookoutStack, wait_until

pytestmark = pytest.mark.e2e

SECRET = "e2e-signing-secret"


@pytest.fixture(scope="module")
def smtp():
    receiver = SmtpReceiver()
    yield receiver
    receiver.close()


@pytest.fixture(scope="module")
def stack_env(smtp):
    return {
        "EMAIL_HOST": "127.0.0.1", "EMAIL_PORT": str(smtp.port), "DEFAULT_FROM_EMAIL": "lookout@e2e.test",
        "LOOKOUT_ALERT_SWEEP_SECONDS": "1", "LOOKOUT_ALERT_TIMEOUT_SECONDS": "2", "LOOKOUT_ALERT_LEASE_SECONDS": "4",
        "LOOKOUT_ALERT_RETRY_BASE_SECONDS": "1",
        "LOOKOUT_GUARD_MIN_FAILING": "4", "LOOKOUT_GUARD_FAILING_PERCENT": "60", "LOOKOUT_GUARD_WINDOW_SECONDS": "5",
    }


@pytest.fixture
def monitors(stack):
    """Monitors made by a test, deleted after it, so the next test's mass-failure arithmetic starts clean."""
    created: list[int] = []
    yield created
    for monitor_id in created:
        stack.api("DELETE", f"monitors/{monitor_id}/")


def ok(response: requests.Response, status: int = 200) -> dict:
    assert response.status_code == status, response.text
    return response.json()


def channel(stack: LookoutStack, **fields) -> int:
    return ok(stack.api("POST", "channels/", json={"name": fields.get("kind", "c"), **fields}), 201)["id"]


def monitor(stack: LookoutStack, monitors: list[int], target: HttpTarget, **fields) -> dict:
    created = ok(stack.api("POST", "monitors/", json={"name": "e2e", "url": target.url, "interval": 1, **fields}),
                 201)
    monitors.append(created["id"])
    return created


def status_of(stack: LookoutStack, monitor_id: int) -> str:
    return stack.api("GET", f"monitors/{monitor_id}/").json()["status"]


def notifications(stack: LookoutStack, **params) -> list[dict]:
    return ok(stack.api("GET", "notifications/", params={"page_size": 500, **params}))["results"]


def slack_events(receiver: WebhookReceiver, icon: str) -> list:
    return receiver.requests(lambda r: r.json().get("text", "").startswith(icon))


def test_a_flip_200_500_200_alerts_once_down_once_up_per_channel_with_a_true_incident_and_stats(
        stack, smtp, http_target, monitors, report):
    hook, slack = WebhookReceiver(), WebhookReceiver()
    try:
        channels = [channel(stack, kind="webhook", url=hook.url, secret=SECRET),
                    channel(stack, kind="slack", url=slack.url),
                    channel(stack, kind="email", address="oncall@e2e.test")]
        created = monitor(stack, monitors, http_target, name="flip", channels=channels, failure_threshold=2)
        wait_until(lambda: status_of(stack, created["id"]) == "up", timeout=15, what="the monitor to be up")

        failing_from = time.time()
        http_target.set(status=500, body=b"broken")
        wait_until(lambda: hook.events("monitor.down"), timeout=15, what="the down webhook")
        down_hit = [hit for hit in http_target.hits if hit.at > failing_from]
        crossing = down_hit[1].at  # the second failed probe crosses failure_threshold=2
        arrived = hook.events("monitor.down")[0].at
        wait_until(lambda: slack_events(slack, ":red_circle:") and smtp.received("DOWN: flip"), timeout=10,
                   what="the down alert on Slack and by email")

        time.sleep(1.5)
        recovering_from = time.time()
        http_target.set(status=200, body=b"ok")
        wait_until(lambda: hook.events("monitor.up") and slack_events(slack, ":large_green_circle:")
                   and smtp.received("UP: flip"), timeout=15, what="the up alert on every channel")
        ok(stack.api("POST", f"monitors/{created['id']}/pause/"))
        time.sleep(2)  # anything still in flight lands, and the sweep has had its chances to send twice

        # Exactly one down and one up per channel, signed, with the event ids Lookout recorded.
        assert [r.json()["event"] for r in hook.requests()] == ["monitor.down", "monitor.up"]
        assert all(r.signature_valid(SECRET) for r in hook.requests())
        assert len(slack.requests()) == 2 and len(slack_events(slack, ":red_circle:")) == 1
        assert sorted(mail.subject.split(":")[0] for mail in smtp.received(": flip")) == [
            "[Lookout] DOWN", "[Lookout] UP"]
        recorded = notifications(stack, monitor=created["id"])
        assert len(recorded) == 6 and {n["state"] for n in recorded} == {"delivered"}
        assert {r.headers["X-Lookout-Event-Id"] for r in hook.requests() + slack.requests()} | {
            mail.event_id for mail in smtp.received(": flip")} == {n["event_id"] for n in recorded}

        # The incident spans the first failed probe to the first successful one, as the target saw them.
        [incident] = ok(stack.api("GET", "incidents/", params={"monitor": created["id"]}))["results"]
        first_failure = down_hit[0].at
        first_success = [hit.at for hit in http_target.hits if hit.at > recovering_from][0]
        started = datetime.fromisoformat(incident["started_at"]).timestamp()
        ended = datetime.fromisoformat(incident["ended_at"]).timestamp()
        assert abs(started - first_failure) < 0.25 and abs(ended - first_success) < 0.25
        assert incident["duration_seconds"] == pytest.approx(first_success - first_failure, abs=0.5)
        assert hook.events("monitor.down")[0].json()["incident"]["id"] == incident["id"]

        # Statistics agree with the raw results.
        results = ok(stack.api("GET", "results/", params={"monitor": created["id"], "page_size": 500}))
        assert results["next"] is None  # one page holds them all
        checks = len(results["results"])
        failures = sum(not r["success"] for r in results["results"])
        stats = ok(stack.api("GET", f"monitors/{created['id']}/stats/", params={"window": "1h"}))
        assert (stats["checks"], stats["failures"], stats["incidents"]) == (checks, failures, 1)
        assert stats["uptime_percent"] == pytest.approx(100 * (checks - failures) / checks, abs=1e-3)
        assert stats["downtime_seconds"] == pytest.approx(incident["duration_seconds"], abs=0.01)
        latencies = [r["response_time_ms"] for r in results["results"] if r["success"]]
        assert stats["response_time_ms"]["avg"] == pytest.approx(sum(latencies) / len(latencies), abs=0.01)

        detected = datetime.fromisoformat(incident["detected_at"]).timestamp()
        webhook_down = [n for n in recorded if n["event"] == "monitor.down" and n["channel"] == channels[0]][0]
        claimed = datetime.fromisoformat(webhook_down["attempt_log"][0]["started_at"]).timestamp()
        report(f"threshold -> webhook: {(arrived - crossing) * 1000:.0f} ms from the target answering the "
               f"failing probe that crossed failure_threshold to the webhook's arrival "
               f"({(claimed - crossing) * 1000:.0f} ms to the delivery's claim, "
               f"{(arrived - claimed) * 1000:.0f} ms claim to arrival; "
               f"{(arrived - detected) * 1000:.0f} ms from that probe's start); incident "
               f"{incident['duration_seconds']:.2f} s, {stats['checks']} checks, "
               f"{stats['failures']} failures, uptime {stats['uptime_percent']} %")
        assert arrived - crossing < 2.0
    finally:
        hook.close()
        slack.close()


def test_a_receiver_answering_500_twice_then_200_gets_exactly_one_successful_delivery(
        stack, http_target, webhook, monitors, report):
    webhook.answer(Answer(500), Answer(500))
    http_target.set(status=500)
    hook = channel(stack, kind="webhook", url=webhook.url, secret=SECRET)
    created = monitor(stack, monitors, http_target, channels=[hook], failure_threshold=1)

    def delivered() -> list[dict]:
        return [n for n in notifications(stack, monitor=created["id"]) if n["state"] == "delivered"]

    [notification] = wait_until(delivered, timeout=20, what="the delivery after two 500s")
    ok(stack.api("POST", f"monitors/{created['id']}/pause/"))
    time.sleep(2.5)

    assert len(webhook.requests()) == 3
    assert {r.headers["X-Lookout-Event-Id"] for r in webhook.requests()} == {notification["event_id"]}
    assert [(a["outcome"], a["status_code"]) for a in notification["attempt_log"]] == [
        ("transient", 500), ("transient", 500), ("delivered", 200)]
    gaps = [later.at - earlier.at for earlier, later in zip(webhook.requests(), webhook.requests()[1:],
                                                             strict=False)]
    report(f"retries after 500, 500: {[round(g, 2) for g in gaps]} s apart (base 1 s, doubling, "
           "published by the 1 s sweep)")
    # Backing off: about 1 s, then 2 s (the 1 s sweep publishes a retry once it is due, so up to 1 s later).
    assert gaps[0] >= 0.85 and gaps[1] >= 1.75


def test_a_worker_killed_mid_delivery_is_followed_by_a_delivery_after_the_lease_with_the_same_event_id(
        stack, http_target, webhook, monitors, report):
    webhook.answer(default=Answer(200, delay=30))  # the receiver stalls: the worker is mid-delivery
    http_target.set(status=500)
    hook = channel(stack, kind="webhook", url=webhook.url, secret=SECRET)
    created = monitor(stack, monitors, http_target, channels=[hook], failure_threshold=1)

    wait_until(lambda: webhook.requests(), timeout=15, interval=0.02, what="the delivery to start")
    stack.processes["worker"].kill()  # SIGKILL: no chance to finish, settle or release the row
    killed_at = time.time()
    stack.processes["worker"].wait()
    webhook.answer(default=Answer(200))
    ok(stack.api("POST", f"monitors/{created['id']}/pause/"))
    stack.start("worker", "worker", LOOKOUT_METRICS_PORT=str(stack.worker_metrics_port))

    wait_until(lambda: len(webhook.requests()) >= 2, timeout=30, what="the delivery after the lease")
    redelivered_at = webhook.requests()[1].at
    [notification] = wait_until(lambda: [n for n in notifications(stack, monitor=created["id"])
                                         if n["state"] == "delivered"], timeout=10, what="the row to settle")
    time.sleep(1.5)

    first, second = webhook.requests()[:2]
    assert len(webhook.requests()) == 2
    assert first.headers["X-Lookout-Event-Id"] == second.headers["X-Lookout-Event-Id"] == notification["event_id"]
    assert first.body == second.body and second.signature_valid(SECRET)
    assert [a["outcome"] for a in notification["attempt_log"]] == ["abandoned", "delivered"]
    report(f"worker killed mid-delivery: delivered again {redelivered_at - killed_at:.1f} s later "
           "(lease 4 s, worker restart included), same event id")
    assert redelivered_at - first.at >= 3.9  # not before the lease (4 s from the claim, just before arrival) ran out


def test_a_maintenance_window_silences_alerts_and_its_end_sends_the_one_still_due(
        stack, http_target, webhook, monitors):
    hook = channel(stack, kind="webhook", url=webhook.url)
    created = monitor(stack, monitors, http_target, channels=[hook], failure_threshold=1)
    wait_until(lambda: status_of(stack, created["id"]) == "up", timeout=15, what="the monitor to be up")
    now = time.time()
    window = ok(stack.api("POST", "maintenance-windows/", json={
        "monitor": created["id"], "starts_at": datetime.fromtimestamp(now - 60).astimezone().isoformat(),
        "ends_at": datetime.fromtimestamp(now + 3600).astimezone().isoformat()}), 201)
    assert status_of(stack, created["id"]) == "maintenance"

    http_target.set(status=500)
    open_incident = wait_until(lambda: ok(stack.api("GET", "incidents/", params={
        "monitor": created["id"], "open": "true"}))["results"], timeout=15, what="the incident")
    probes_before = len(http_target.hits)
    time.sleep(2.5)

    assert webhook.requests() == []
    assert len(http_target.hits) > probes_before  # still probed and recorded
    assert open_incident[0]["alerts_deferred"] is True
    assert status_of(stack, created["id"]) == "maintenance"

    assert stack.api("DELETE", f"maintenance-windows/{window['id']}/").status_code == 204
    wait_until(lambda: webhook.events("monitor.down"), timeout=10, what="the deferred down alert")
    assert status_of(stack, created["id"]) == "down"
    ok(stack.api("POST", f"monitors/{created['id']}/pause/"))
    assert len(webhook.requests()) == 1


def test_most_monitors_failing_at_once_raise_one_degraded_event_instead_of_a_flood(
        stack, http_target, webhook, monitors, report):
    ops_token = stack.run("manage", "createapiuser", "ops", "--superuser").strip()
    staff = WebhookReceiver()
    try:
        ok(requests.post(f"{stack.url}/api/v1/channels/", timeout=10, headers={"Authorization": f"Token {ops_token}"},
                         json={"name": "ops", "kind": "webhook", "url": staff.url, "system_events": True}), 201)
        hook = channel(stack, kind="webhook", url=webhook.url)
        fleet = [monitor(stack, monitors, http_target, name=f"fleet-{i}", channels=[hook], failure_threshold=2)
                 for i in range(6)]
        wait_until(lambda: all(status_of(stack, m["id"]) == "up" for m in fleet), timeout=20, what="the fleet up")

        def story() -> list:
            """What happened, for a failure's message: every alert received, when, with what."""
            return sorted([(round(r.at - failing_from, 2), "staff", r.json()["event"], r.json().get("episode"))
                           for r in staff.requests()] + [(round(r.at - failing_from, 2), "owner", r.json()["event"],
                                                          r.json()["monitor"]["name"]) for r in webhook.requests()])

        failing_from = time.time()
        http_target.set(status=500)
        wait_until(lambda: staff.events("lookout.degraded"), timeout=15, what="the degraded event")
        degraded_after = staff.events("lookout.degraded")[0].at - failing_from
        wait_until(lambda: all(status_of(stack, m["id"]) == "down" for m in fleet), timeout=15, what="all down")
        auth = {"Authorization": f"Bearer {stack.metrics_token}"}
        wait_until(lambda: "lookout_degraded 1.0" in requests.get(
            f"http://127.0.0.1:{stack.beat_metrics_port}/metrics", headers=auth, timeout=5).text,
            timeout=15, what="beat's lookout_degraded metric")
        time.sleep(1.5)
        assert webhook.requests() == [], story()  # no flood: every per-monitor alert is held

        http_target.set(status=200)
        wait_until(lambda: staff.events("lookout.recovered"), timeout=20, what="the recovered event")
        time.sleep(1.5)

        assert webhook.requests() == [], story()  # they all came back: the held alerts were dropped, not sent
        assert len(staff.events("lookout.degraded")) == 1 and len(staff.events("lookout.recovered")) == 1
        held = [n for m in fleet for n in notifications(stack, monitor=m["id"])]
        assert len(held) == 6 and {(n["event"], n["state"]) for n in held} == {("monitor.down", "dropped")}
        report(f"mass failure of 6 monitors: one lookout.degraded to staff {degraded_after:.1f} s after the "
               "target broke, 0 of 6 per-monitor alerts sent, all dropped once they recovered")
    finally:
        staff.close()
