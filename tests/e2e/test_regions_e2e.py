"""Regions with real processes: api, beat and a home worker, a `lookout worker --region eu-west` and a database-less
`lookout agent --region us-east`, against a target that answers by the probing region. Alerts are read from a real
webhook receiver, results from the database the home region writes."""

import json
import signal
import time

import psycopg
import pytest
import requests

from support.receivers import WebhookReceiver
from support.regional_target import RegionalTarget
from support.stack import LOOKOUT, LookoutStack, base_environment, free_port, process_start, wait_until

pytestmark = pytest.mark.e2e

REGIONS = ["home", "eu-west", "us-east"]
INTERVAL = 3


@pytest.fixture(scope="module")
def stack_env():
    return {"LOOKOUT_REGIONS": ",".join(REGIONS), "LOOKOUT_ALERT_SWEEP_SECONDS": "1",
            "LOOKOUT_ALERT_TIMEOUT_SECONDS": "2", "LOOKOUT_ALERT_LEASE_SECONDS": "4",
            "LOOKOUT_REGION_SUSPECT_MIN_RESULTS": "6", "LOOKOUT_REGION_WINDOW_SECONDS": "15",
            # Three monitors failing in one region must not look like Lookout's own outage to the guard.
            "LOOKOUT_GUARD_MIN_FAILING": "50",
            # Rounds of 3 s decide within a few seconds, before a region failing one monitor of two has results
            # enough to look suspect: results recorded at once, not gathered for half a second as at a light load.
            "LOOKOUT_WORKER_WRITE_LINGER_SECONDS": "0"}


@pytest.fixture(scope="module")
def target():
    server = RegionalTarget()
    yield server
    server.close()


@pytest.fixture(scope="module")
def receiver():
    server = WebhookReceiver()
    yield server
    server.close()


@pytest.fixture(scope="module")
def regional(stack: LookoutStack):
    """The other regions' probers: a worker with the database's settings for eu-west, and for us-east an agent with
    nothing but the broker, its region and its key."""
    stack.start("eu", "worker", "--region", "eu-west", LOOKOUT_METRICS_PORT=str(free_port()))
    key = stack.run("manage", "regionkey", "us-east").strip()
    agent_env = base_environment(CELERY_BROKER_URL=stack.env["CELERY_BROKER_URL"], LOOKOUT_REGION="us-east",
                                 LOOKOUT_REGION_KEY=key, LOOKOUT_ALLOW_PRIVATE_TARGETS="1",
                                 LOOKOUT_METRICS_PORT=str(free_port()), LOOKOUT_WORKER_CONCURRENCY="10")
    assert not {"DATABASE_URL", "SECRET_KEY", "DJANGO_SETTINGS_MODULE"} & agent_env.keys()
    agent = process_start([*LOOKOUT, "agent", "--region", "us-east"], env=agent_env, log=stack.workdir / "agent.log")
    stack.processes["agent"] = agent
    return agent


def ok(response: requests.Response, status: int = 200) -> dict:
    assert response.status_code == status, response.text
    return response.json()


def monitor(stack: LookoutStack, target: RegionalTarget, path: str, channel: int | None = None) -> dict:
    return ok(stack.api("POST", "monitors/", json={
        "name": f"shop {path}", "url": target.url(path), "interval": INTERVAL, "regions": REGIONS,
        "channels": [channel] if channel else [], "secret_headers": {"X-Api-Key": "k-123"}}), 201)


def status(stack: LookoutStack, monitor_id: int) -> str:
    return ok(stack.api("GET", f"monitors/{monitor_id}/"))["status"]


def alerts(receiver: WebhookReceiver, event: str, monitor_id: int) -> list[dict]:
    bodies = [json.loads(received.body) for received in receiver.received]
    return [body for body in bodies if body.get("event") == event and (body.get("monitor") or {}).get("id") ==
            monitor_id]


def every_region_reports(target: RegionalTarget, path: str, since: float) -> bool:
    return {hit.region for hit in target.hits_of(path, since=since)} >= set(REGIONS)


@pytest.fixture(scope="module")
def hook(stack: LookoutStack, receiver: WebhookReceiver) -> int:
    return ok(stack.api("POST", "channels/", json={"name": "hook", "kind": "webhook", "url": receiver.url}), 201)["id"]


def test_one_region_failing_is_degraded_and_two_are_down_with_one_alert_naming_them(stack, regional, target,
                                                                                     receiver, hook, report):
    started = time.time()
    a, b = monitor(stack, target, "/a", hook), monitor(stack, target, "/b", hook)
    wait_until(lambda: every_region_reports(target, "/b", started) and status(stack, b["id"]) == "up"
               and status(stack, a["id"]) == "up", timeout=30, what="both monitors up from every region")
    hit = target.hits_of("/b", since=started)[-1]
    assert hit.headers.get("X-Api-Key") == "k-123"  # sealed to the region, opened there

    target.fail("/a", "eu-west")
    wait_until(lambda: status(stack, a["id"]) == "degraded", timeout=4 * INTERVAL, what="/a degraded")

    failing_at = time.time()
    target.fail("/b", "eu-west", "us-east")
    wait_until(lambda: alerts(receiver, "monitor.down", b["id"]), timeout=INTERVAL + 15, what="/b's down alert")
    first_failure = min(hit.at for hit in target.hits_of("/b", since=failing_at) if hit.status == 503)
    (received,) = [received for received in receiver.received if json.loads(received.body).get("event") ==
                   "monitor.down" and json.loads(received.body)["monitor"]["id"] == b["id"]]
    report(f"first failing probe to the down alert received: {received.at - first_failure:.2f} s "
           f"(interval {INTERVAL} s, failure_threshold 2)")
    assert received.at - first_failure <= INTERVAL + 5
    (down,) = alerts(receiver, "monitor.down", b["id"])
    assert down["incident"]["confirmed"] == "down from eu-west and us-east, 2 of 3"
    assert status(stack, b["id"]) == "down"

    target.fail("/b")
    wait_until(lambda: alerts(receiver, "monitor.up", b["id"]), timeout=4 * INTERVAL, what="/b's up alert")
    time.sleep(INTERVAL)
    assert len(alerts(receiver, "monitor.down", b["id"])) == 1 and len(alerts(receiver, "monitor.up", b["id"])) == 1
    assert not alerts(receiver, "monitor.down", a["id"])  # degraded is no outage
    target.fail("/a")


def test_the_agents_results_are_stored_once_each_with_its_region(stack, regional):
    with psycopg.connect(stack.database_url.replace("postgres://", "postgresql://")) as conn:
        rows, runs = conn.execute("SELECT count(*), count(DISTINCT task_id) FROM monitors_proberesult "
                                  "WHERE region = 'us-east'").fetchone()
    assert rows > 0 and rows == runs
    assert "DATABASE_URL" not in open(f"/proc/{regional.pid}/environ", "rb").read().decode(errors="replace")


def test_a_killed_agent_leaves_its_region_unknown_never_down(stack, regional, target, receiver, hook):
    started = time.time()
    c = monitor(stack, target, "/c", hook)
    wait_until(lambda: every_region_reports(target, "/c", started) and status(stack, c["id"]) == "up", timeout=30,
               what="/c up from every region")

    regional.send_signal(signal.SIGKILL)
    regional.wait(10)
    stack.processes.pop("agent")
    target.fail("/c", "eu-west")
    time.sleep(4 * INTERVAL)

    assert status(stack, c["id"]) in ("up", "degraded")
    assert not alerts(receiver, "monitor.down", c["id"])
    assert not [hit for hit in target.hits_of("/c", since=time.time() - INTERVAL) if hit.region == "us-east"]


def test_a_region_failing_every_monitor_is_suspect_with_one_staff_alert_and_nothing_down(stack, target, receiver):
    staff = stack.run("manage", "createapiuser", "staff", "--superuser").strip()
    headers = {"Authorization": f"Token {staff}"}
    ok(stack.api("POST", "channels/", headers=headers, json={"name": "staff", "kind": "webhook",
                                                             "url": receiver.url + "staff", "system_events": True}),
       201)
    ids = [m["id"] for m in ok(stack.api("GET", "monitors/"))["results"]]
    for path in ("/a", "/b", "/c"):
        target.fail(path, "eu-west")

    def staff_events(event: str) -> list[dict]:
        return [json.loads(r.body) for r in receiver.received if r.path.endswith("staff")
                and json.loads(r.body).get("event") == event]

    wait_until(lambda: staff_events("lookout.region.suspect"), timeout=30, what="eu-west suspect")
    regions = {region["name"]: region for region in ok(stack.api("GET", "regions/"))}
    assert regions["eu-west"]["suspect"] and not regions["home"]["suspect"]
    time.sleep(2 * INTERVAL)
    assert {status(stack, monitor_id) for monitor_id in ids} <= {"up", "degraded"}
    assert not [body for body in (json.loads(r.body) for r in receiver.received) if body.get("event") ==
                "monitor.down" and body["monitor"]["id"] in ids and body["occurred_at"] > regions["eu-west"][
                    "suspect_since"]]

    for path in ("/a", "/b", "/c"):
        target.fail(path)
    wait_until(lambda: staff_events("lookout.region.recovered"), timeout=40, what="eu-west recovered")
    assert len(staff_events("lookout.region.suspect")) == 1 and len(staff_events("lookout.region.recovered")) == 1
