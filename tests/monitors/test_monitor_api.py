"""The monitors REST API, on the real database and broker: every endpoint, bad input, tenant isolation."""

import json
import os
import shutil
import subprocess
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from django_celery_beat.models import PeriodicTask
from rest_framework.test import APIClient

from lookout.config.celery_app import app as celery_app
from lookout.monitors.models import IssuedTask, Monitor, MonitorStatus, ProbeResult
from lookout.scheduling.schedules import PROBE_TASK
from support.api_errors import field_errors

pytestmark = pytest.mark.django_db

MONITORS = "/api/v1/monitors/"
RESULTS = "/api/v1/results/"
UNREACHABLE_BROKER = "amqp://guest:guest@127.0.0.1:1//"


def monitor_url(pk: int, action: str = "") -> str:
    return f"{MONITORS}{pk}/{action + '/' if action else ''}"


def payload(**overrides: object) -> dict:
    return {"name": "Example", "url": "https://example.com/health", "interval": 60, **overrides}


def create(client: APIClient, **overrides: object) -> dict:
    response = client.post(MONITORS, payload(**overrides), format="json")
    assert response.status_code == 201, response.content
    return response.json()


def periodic_task(monitor_id: int) -> PeriodicTask:
    return Monitor.objects.select_related("periodic_task").get(pk=monitor_id).periodic_task


def row_counts() -> tuple[int, int]:
    return Monitor.objects.count(), PeriodicTask.objects.count()


def result_for(monitor_id: int, *, minutes_ago: int, success: bool = True) -> ProbeResult:
    return ProbeResult.objects.create(
        monitor_id=monitor_id, checked_at=datetime.now(UTC) - timedelta(minutes=minutes_ago), success=success,
        status_code=200 if success else 503, response_time_ms=12.5, error="" if success else "HTTP 503",
        task_id=f"task-{minutes_ago}",
    )


def broker_ports_of_this_process() -> set[str]:
    """The local ports of this process's TCP connections to the broker (port 5672), from /proc."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            link = os.readlink(f"/proc/self/fd/{fd}")
        except FileNotFoundError:  # the descriptor listdir itself used
            continue
        if link.startswith("socket:["):
            inodes.add(link[len("socket:["):-1])
    ports = set()
    with open("/proc/self/net/tcp") as table:
        for line in table.readlines()[1:]:
            local, remote, inode = (line.split()[i] for i in (1, 2, 9))
            if remote.endswith(":1628") and inode in inodes:  # 0x1628 == 5672
                ports.add(str(int(local.split(":")[1], 16)))
    return ports


def broker_close_connections_of_this_process() -> None:
    """Have RabbitMQ close every connection this process holds, as a broker restart would."""
    assert shutil.which("rabbitmqctl"), "this test closes broker connections with rabbitmqctl"
    ports = broker_ports_of_this_process()
    listed = subprocess.run(["rabbitmqctl", "-q", "list_connections", "pid", "peer_port"],
                            capture_output=True, text=True, timeout=60, check=True).stdout
    ours = [fields[0] for fields in map(str.split, listed.splitlines()) if len(fields) == 2 and fields[1] in ports]
    assert ours, "no broker connection of this process found"
    for connection_pid in ours:
        subprocess.run(["rabbitmqctl", "-q", "close_connection", connection_pid, "test: broker went away"],
                       capture_output=True, timeout=60, check=True)


@pytest.fixture
def broker_down():
    """Point the API's publisher at a port nothing listens on, for one test.

    Celery's namespaced config keeps CELERY_BROKER_URL ahead of `broker_url`, so the write URL (what
    publishers use) is overridden; the cached connection and producer pools are set aside so the next
    publish builds new ones, then put back.
    """
    saved = celery_app.conf.broker_write_url, celery_app._pool, celery_app.amqp._producer_pool
    celery_app.conf.broker_write_url = UNREACHABLE_BROKER
    celery_app._pool = celery_app.amqp._producer_pool = None
    yield
    if celery_app._pool is not None:
        celery_app._pool.force_close_all()
    celery_app.conf.broker_write_url, celery_app._pool, celery_app.amqp._producer_pool = saved


# --- list ---------------------------------------------------------------------------------------------------


def test_the_list_is_paginated_with_count_next_previous_and_results(alice_api):
    ids = [create(alice_api, name=f"m{i}")["id"] for i in range(3)]

    page = alice_api.get(MONITORS, {"page_size": 2}).json()

    assert set(page) == {"count", "next", "previous", "results"}
    assert page["count"] == 3
    assert page["previous"] is None
    assert "page=2" in page["next"]
    assert [m["id"] for m in page["results"]] == ids[:2]
    last = alice_api.get(page["next"]).json()
    assert [m["id"] for m in last["results"]] == ids[2:]
    assert last["next"] is None


# --- create -------------------------------------------------------------------------------------------------


def test_a_created_monitor_gets_defaults_and_an_enabled_periodic_task_on_the_probes_queue(alice_api, alice):
    response = alice_api.post(MONITORS, {"name": "Home", "url": "https://example.com/", "interval": 30},
                              format="json")

    assert response.status_code == 201
    body = response.json()
    assert body["method"] == "GET"
    assert body["timeout"] == 10.0
    assert body["timezone"] == "UTC"
    assert body["status"] == "pending"
    assert body["enabled"] is True
    assert body["cron"] is None and body["expected_status"] is None and body["headers"] == {}
    monitor = Monitor.objects.get(pk=body["id"])
    assert monitor.owner == alice
    task = monitor.periodic_task
    assert task.enabled is True
    assert task.queue == "probes"
    assert task.task == PROBE_TASK == "lookout.probes.tasks.probe_monitor"
    assert json.loads(task.args) == [monitor.pk]
    assert task.name == f"monitor:{monitor.pk}"
    assert task.interval.every == 30 and task.interval.period == "seconds"
    assert task.crontab is None
    assert task.expire_seconds == 30


def test_the_default_timeout_is_capped_at_a_short_interval(alice_api, settings):
    settings.LOOKOUT_MIN_INTERVAL = 5

    assert create(alice_api, interval=5)["timeout"] == 5.0


def test_a_cron_monitor_gets_a_crontab_schedule_in_its_timezone(alice_api):
    body = create(alice_api, interval=None, cron="*/5  9-17 * * 1-5", timezone="Europe/Paris")

    assert body["cron"] == "*/5 9-17 * * 1-5"
    assert body["interval"] is None
    task = periodic_task(body["id"])
    assert task.interval is None
    assert task.expire_seconds is None  # the scheduler sets each crontab message's expiry
    crontab = task.crontab
    assert (crontab.minute, crontab.hour, crontab.day_of_month, crontab.month_of_year, crontab.day_of_week) == (
        "*/5", "9-17", "*", "*", "1-5")
    assert str(crontab.timezone) == "Europe/Paris"


# --- retrieve, update, delete -------------------------------------------------------------------------------


def test_retrieve_returns_the_monitor(alice_api):
    created = create(alice_api, keyword="healthy", headers={"X-Probe": "1"}, expected_status=[200, 204])

    response = alice_api.get(monitor_url(created["id"]))

    assert response.status_code == 200
    assert response.json() == created


def test_a_patched_interval_changes_the_schedule_but_not_beats_bookkeeping(alice_api):
    monitor_id = create(alice_api, interval=60)["id"]
    beat_ran_at = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    # What beat writes after sending a probe; the API must never overwrite it.
    PeriodicTask.objects.filter(monitor__id=monitor_id).update(last_run_at=beat_ran_at, total_run_count=7)

    response = alice_api.patch(monitor_url(monitor_id), {"interval": 20}, format="json")

    assert response.status_code == 200
    assert response.json()["interval"] == 20
    task = periodic_task(monitor_id)
    assert task.interval.every == 20
    assert task.expire_seconds == 20
    assert task.last_run_at == beat_ran_at
    assert task.total_run_count == 7


def test_a_patch_switches_interval_to_cron_and_back(alice_api):
    monitor_id = create(alice_api, interval=60)["id"]

    to_cron = alice_api.patch(monitor_url(monitor_id), {"cron": "0 * * * *", "interval": None}, format="json")

    assert to_cron.status_code == 200
    assert (to_cron.json()["cron"], to_cron.json()["interval"]) == ("0 * * * *", None)
    task = periodic_task(monitor_id)
    assert task.interval is None and task.expire_seconds is None
    assert (task.crontab.minute, task.crontab.hour) == ("0", "*")

    to_interval = alice_api.patch(monitor_url(monitor_id), {"interval": 45, "cron": None}, format="json")

    assert to_interval.status_code == 200
    assert (to_interval.json()["cron"], to_interval.json()["interval"]) == (None, 45)
    task = periodic_task(monitor_id)
    assert task.crontab is None
    assert task.interval.every == 45 and task.expire_seconds == 45


def test_a_patch_shortening_the_interval_caps_the_timeout_the_monitor_had(alice_api):
    monitor_id = create(alice_api, interval=60, timeout=30)["id"]

    response = alice_api.patch(monitor_url(monitor_id), {"interval": 15}, format="json")

    assert response.status_code == 200
    assert response.json()["timeout"] == 15.0
    assert Monitor.objects.get(pk=monitor_id).timeout == 15.0


def test_put_replaces_the_monitor_and_its_schedule(alice_api):
    monitor_id = create(alice_api, interval=60, keyword="ok")["id"]

    response = alice_api.put(monitor_url(monitor_id), {
        "name": "Renamed", "url": "http://example.org/ping", "method": "HEAD", "interval": None,
        "cron": "30 2 * * *", "timezone": "America/New_York", "timeout": 5,
    }, format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["name"], body["url"], body["method"], body["timeout"]) == (
        "Renamed", "http://example.org/ping", "HEAD", 5.0)
    task = periodic_task(monitor_id)
    assert task.interval is None
    assert (task.crontab.minute, task.crontab.hour, str(task.crontab.timezone)) == (
        "30", "2", "America/New_York")


def test_delete_removes_the_monitor_and_its_periodic_task(alice_api):
    monitor_id = create(alice_api)["id"]
    task_id = periodic_task(monitor_id).pk

    response = alice_api.delete(monitor_url(monitor_id))

    assert response.status_code == 204
    assert not Monitor.objects.filter(pk=monitor_id).exists()
    assert not PeriodicTask.objects.filter(pk=task_id).exists()
    assert alice_api.get(monitor_url(monitor_id)).status_code == 404


# --- pause, resume ------------------------------------------------------------------------------------------


def test_pause_disables_the_monitor_and_its_periodic_task(alice_api):
    monitor_id = create(alice_api)["id"]

    response = alice_api.post(monitor_url(monitor_id, "pause"))

    assert response.status_code == 200
    assert response.json()["id"] == monitor_id
    assert (response.json()["status"], response.json()["enabled"]) == ("paused", False)
    assert periodic_task(monitor_id).enabled is False


def test_resume_makes_the_monitor_pending_and_enables_its_periodic_task(alice_api):
    monitor_id = create(alice_api)["id"]
    alice_api.post(monitor_url(monitor_id, "pause"))

    response = alice_api.post(monitor_url(monitor_id, "resume"))

    assert response.status_code == 200
    assert (response.json()["status"], response.json()["enabled"]) == ("pending", True)
    assert periodic_task(monitor_id).enabled is True


# --- check now and task state -------------------------------------------------------------------------------


def test_check_queues_a_probe_whose_task_only_its_owner_can_look_up(alice_api, bob_api, alice):
    monitor_id = create(alice_api)["id"]

    response = alice_api.post(monitor_url(monitor_id, "check"))

    assert response.status_code == 202
    task_id = response.json()["task_id"]
    issued = IssuedTask.objects.get(task_id=task_id)
    assert (issued.owner, issued.monitor_id) == (alice, monitor_id)
    state = alice_api.get(f"/api/v1/tasks/{task_id}/")
    assert state.status_code == 200
    # No worker runs in these tests: the message waits in the queue.
    assert state.json() == {"task_id": task_id, "state": "PENDING", "result": None, "error": None}
    assert bob_api.get(f"/api/v1/tasks/{task_id}/").status_code == 404


def test_check_publishes_an_expiring_message_to_the_probes_queue(alice_api):
    monitor_id = create(alice_api)["id"]
    task_id = alice_api.post(monitor_url(monitor_id, "check")).json()["task_id"]

    with celery_app.connection_for_read() as connection:
        channel = connection.channel()
        try:
            found = None
            while (message := channel.basic_get("probes", no_ack=False)) is not None:
                if message.headers.get("id") == task_id:
                    found = message
                    channel.basic_ack(message.delivery_tag)  # ours: take it off the queue
                    break
        finally:
            channel.close()  # any other message read here goes back to the queue
    assert found is not None, "the check-now message is not in the probes queue"
    assert found.headers["task"] == PROBE_TASK
    assert found.headers["expires"] is not None
    assert json.loads(found.body)[0] == [monitor_id]


def test_an_unknown_task_id_is_a_404_not_pending(alice_api):
    assert alice_api.get(f"/api/v1/tasks/{uuid.uuid4()}/").status_code == 404


def test_check_with_the_broker_down_is_a_503_at_once_and_issues_no_task(alice_api, broker_down):
    monitor_id = create(alice_api)["id"]
    started = time.monotonic()

    response = alice_api.post(monitor_url(monitor_id, "check"))

    assert response.status_code == 503
    assert "broker" in response.json()["detail"]
    assert time.monotonic() - started < 1.0  # no connection retries: a refused broker is refused at once
    assert IssuedTask.objects.count() == 0


def test_a_check_after_the_broker_dropped_the_pooled_connection_is_still_queued(alice_api):
    monitor_id = create(alice_api)["id"]
    assert alice_api.post(monitor_url(monitor_id, "check")).status_code == 202  # the pool now holds a connection
    # The broker closes it (as a broker restart would); the API's pool still takes it for open.
    broker_close_connections_of_this_process()

    response = alice_api.post(monitor_url(monitor_id, "check"))

    assert response.status_code == 202, response.content
    assert IssuedTask.objects.filter(task_id=response.json()["task_id"]).exists()


def test_monitors_can_still_be_managed_and_readyz_answers_while_the_broker_is_down(alice_api, client,
                                                                                   broker_down):
    monitor_id = create(alice_api)["id"]
    assert alice_api.patch(monitor_url(monitor_id), {"interval": 30}, format="json").status_code == 200
    started = time.monotonic()

    ready = client.get("/readyz")

    assert ready.status_code == 200
    assert ready.json()["database"] == "ok"
    assert ready.json()["broker"].startswith("unavailable")
    # A kubelet readiness probe gives up after 1 s by default: a slower answer would take the API out.
    assert time.monotonic() - started < 1.0


# --- results ------------------------------------------------------------------------------------------------


def test_results_are_listed_newest_first_with_their_fields(alice_api):
    monitor_id = create(alice_api)["id"]
    old, new = result_for(monitor_id, minutes_ago=10), result_for(monitor_id, minutes_ago=1, success=False)

    page = alice_api.get(RESULTS).json()

    assert [r["id"] for r in page["results"]] == [new.pk, old.pk]
    assert set(page["results"][0]) == {"id", "monitor", "checked_at", "success", "status_code", "response_time_ms",
                                       "error", "task_id", "phases", "tls", "failed_condition", "region"}
    newest = page["results"][0]
    assert datetime.fromisoformat(newest.pop("checked_at")) == new.checked_at
    assert newest == {"id": new.pk, "monitor": monitor_id, "success": False, "status_code": 503,
                      "response_time_ms": 12.5, "error": "HTTP 503", "task_id": "task-1", "phases": {},
                      "tls": None, "failed_condition": "", "region": settings.LOOKOUT_HOME_REGION}


def test_results_filter_by_monitor_success_and_since(alice_api):
    first, second = create(alice_api, name="a")["id"], create(alice_api, name="b")["id"]
    old_ok = result_for(first, minutes_ago=60)
    new_fail = result_for(first, minutes_ago=5, success=False)
    other = result_for(second, minutes_ago=1)

    def ids(**params: str) -> list[int]:
        response = alice_api.get(RESULTS, params)
        assert response.status_code == 200
        return [r["id"] for r in response.json()["results"]]

    assert ids() == [other.pk, new_fail.pk, old_ok.pk]
    assert ids(monitor=str(first)) == [new_fail.pk, old_ok.pk]
    assert ids(success="true") == [other.pk, old_ok.pk]
    assert ids(success="false") == [new_fail.pk]
    since = (datetime.now(UTC) - timedelta(minutes=30)).isoformat()
    assert ids(since=since) == [other.pk, new_fail.pk]
    assert ids(monitor=str(first), success="true", since=since) == []


@pytest.mark.parametrize("params", [{"monitor": "abc"}, {"monitor": "0"}, {"success": "maybe"},
                                    {"since": "yesterday"}], ids=lambda p: "-".join(f"{k}={v}" for k, v in p.items()))
def test_a_bad_result_filter_is_a_400_naming_the_filter(alice_api, params):
    response = alice_api.get(RESULTS, params)

    assert response.status_code == 400
    assert set(field_errors(response)) == set(params)


# --- schema, docs, health -----------------------------------------------------------------------------------


def test_the_openapi_schema_documents_the_monitors_endpoints(alice_api):
    response = alice_api.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")

    assert response.status_code == 200
    schema = json.loads(response.content)
    assert schema["openapi"].startswith("3.")
    assert "/api/v1/monitors/" in schema["paths"]
    assert "/api/v1/monitors/{id}/check/" in schema["paths"]


def test_the_docs_are_an_html_page(client):
    response = client.get("/api/v1/docs/")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert b"swagger" in response.content.lower()


def test_healthz_answers_200(client):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_reports_the_database_and_the_broker(client):
    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "broker": "ok"}


def test_the_root_redirects_to_the_docs(client):
    response = client.get("/")

    assert response.status_code == 302
    assert response["Location"] == "/api/v1/docs/"


# --- bad input ----------------------------------------------------------------------------------------------

BAD_CREATES = [
    pytest.param({"url": "ftp://example.com/file"}, "url", id="ftp-url"),
    pytest.param({"url": "javascript:alert(1)"}, "url", id="javascript-url"),
    pytest.param({"url": "http//example.com"}, "url", id="malformed-url"),
    pytest.param({"url": "http://"}, "url", id="url-without-host"),
    pytest.param({"url": None}, "url", id="null-url"),
    pytest.param({"name": "n" * 201}, "name", id="name-over-200"),
    pytest.param({"url": "https://example.com/" + "a" * 2048}, "url", id="url-over-2048"),
    pytest.param({"interval": 0}, "interval", id="interval-zero"),
    pytest.param({"interval": -60}, "interval", id="interval-negative"),
    pytest.param({"interval": 10.5}, "interval", id="interval-fraction"),
    pytest.param({"interval": "abc"}, "interval", id="interval-text"),
    pytest.param({"interval": True}, "interval", id="interval-boolean"),
    pytest.param({"interval": 9}, "interval", id="interval-below-min"),
    pytest.param({"interval": 7 * 24 * 3600 + 1}, "interval", id="interval-above-7-days"),
    pytest.param({"cron": "*/5 * * * *"}, "interval", id="both-interval-and-cron"),
    pytest.param({"interval": None}, "interval", id="neither-interval-nor-cron"),
    pytest.param({"interval": None, "cron": "61 * * * *"}, "cron", id="cron-minute-61"),
    pytest.param({"interval": None, "cron": "* * *"}, "cron", id="cron-3-fields"),
    pytest.param({"interval": None, "cron": "*/0 * * * *"}, "cron", id="cron-step-0"),
    pytest.param({"interval": None, "cron": "0 0 31 2 *"}, "cron", id="cron-february-31"),
    pytest.param({"interval": None, "cron": "0 0 * * *", "timezone": "Mars/Olympus"}, "timezone",
                 id="unknown-timezone"),
    pytest.param({"interval": 20, "timeout": 21}, "timeout", id="timeout-above-interval"),
    pytest.param({"interval": None, "cron": "* * * * *", "timeout": 61}, "timeout", id="timeout-above-cron-60"),
    pytest.param({"timeout": 0}, "timeout", id="timeout-zero"),
    pytest.param({"method": "TRACE"}, "method", id="unknown-method"),
    pytest.param({"expected_status": [99]}, "expected_status", id="expected-status-99"),
    pytest.param({"expected_status": [600]}, "expected_status", id="expected-status-600"),
    pytest.param({"expected_status": "200"}, "expected_status", id="expected-status-string"),
    pytest.param({"expected_status": []}, "expected_status", id="expected-status-empty"),
    pytest.param({"headers": {"Bad Name": "x"}}, "headers", id="header-name-with-space"),
    pytest.param({"headers": {"X-Ok": "a\r\nInjected: 1"}}, "headers", id="header-value-crlf"),
    pytest.param({"headers": ["X-Ok"]}, "headers", id="headers-not-an-object"),
    pytest.param({"owner": 1}, "owner", id="unknown-field"),
]


@pytest.mark.parametrize(("overrides", "field"), BAD_CREATES)
def test_bad_input_is_a_400_with_field_errors_and_creates_nothing(alice_api, overrides, field):
    before = row_counts()

    response = alice_api.post(MONITORS, payload(**overrides), format="json")

    assert response.status_code == 400
    assert field in response.json(), response.json()
    assert row_counts() == before


def test_a_missing_url_is_a_400_and_creates_nothing(alice_api):
    body = payload()
    del body["url"]

    response = alice_api.post(MONITORS, body, format="json")

    assert response.status_code == 400
    assert response.json()["url"] == ["This field is required."]
    assert row_counts() == (0, 0)


def test_a_malformed_json_body_is_a_400_and_creates_nothing(alice_api):
    response = alice_api.post(MONITORS, '{"name":', content_type="application/json")

    assert response.status_code == 400
    assert "JSON parse error" in response.json()["detail"]
    assert row_counts() == (0, 0)


@pytest.mark.parametrize("change", [
    pytest.param({"interval": 5}, id="interval-below-min"),
    pytest.param({"cron": "*/5 * * * *"}, id="cron-without-nulling-interval"),
    pytest.param({"interval": None}, id="nulling-the-only-schedule"),
    pytest.param({"interval": None, "cron": "0 0 31 2 *"}, id="invalid-cron"),
    pytest.param({"interval": 30, "timeout": 31}, id="timeout-above-new-interval"),
    pytest.param({"name": "renamed", "url": "ftp://example.com"}, id="one-bad-field-among-good-ones"),
    pytest.param({"unknown": 1}, id="unknown-field"),
])
def test_a_bad_patch_changes_nothing(alice_api, change):
    monitor_id = create(alice_api, interval=60)["id"]
    before_monitor = alice_api.get(monitor_url(monitor_id)).json()
    task = periodic_task(monitor_id)
    before_task = (task.interval_id, task.crontab_id, task.expire_seconds, task.enabled)

    response = alice_api.patch(monitor_url(monitor_id), change, format="json")

    assert response.status_code == 400
    assert alice_api.get(monitor_url(monitor_id)).json() == before_monitor
    task = periodic_task(monitor_id)
    assert (task.interval_id, task.crontab_id, task.expire_seconds, task.enabled) == before_task


def test_read_only_fields_in_a_patch_are_a_400_and_change_nothing(alice_api):
    monitor_id = create(alice_api)["id"]

    response = alice_api.patch(monitor_url(monitor_id), {"name": "renamed", "status": "up", "enabled": False},
                               format="json")

    assert response.status_code == 400
    assert field_errors(response) == {"enabled": ["This field is read-only."], "status": ["This field is read-only."]}
    monitor = alice_api.get(monitor_url(monitor_id)).json()
    assert (monitor["name"], monitor["status"], monitor["enabled"]) == ("Example", "pending", True)
    assert periodic_task(monitor_id).enabled is True


# --- authentication and tenant isolation --------------------------------------------------------------------


def test_every_endpoint_answers_401_without_credentials(alice_api):
    monitor_id = create(alice_api)["id"]
    task_id = alice_api.post(monitor_url(monitor_id, "check")).json()["task_id"]
    anonymous = APIClient()
    requests = [
        ("get", MONITORS), ("post", MONITORS), ("get", monitor_url(monitor_id)),
        ("patch", monitor_url(monitor_id)), ("put", monitor_url(monitor_id)), ("delete", monitor_url(monitor_id)),
        ("post", monitor_url(monitor_id, "pause")), ("post", monitor_url(monitor_id, "resume")),
        ("post", monitor_url(monitor_id, "check")), ("get", RESULTS), ("get", f"/api/v1/tasks/{task_id}/"),
    ]

    for method, url in requests:
        response = getattr(anonymous, method)(url, payload(), format="json")
        assert response.status_code == 401, (method, url)
        assert response["WWW-Authenticate"] == "Token", (method, url)
    assert Monitor.objects.get(pk=monitor_id).status == MonitorStatus.PENDING
    assert IssuedTask.objects.count() == 1


def test_a_wrong_token_is_a_401(alice_api):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")

    assert client.get(MONITORS).status_code == 401


def test_another_owners_monitor_is_a_404_for_every_operation(alice_api, bob_api):
    monitor_id = create(alice_api)["id"]
    before = alice_api.get(monitor_url(monitor_id)).json()

    assert bob_api.get(monitor_url(monitor_id)).status_code == 404
    assert bob_api.patch(monitor_url(monitor_id), {"name": "mine"}, format="json").status_code == 404
    assert bob_api.put(monitor_url(monitor_id), payload(name="mine"), format="json").status_code == 404
    assert bob_api.post(monitor_url(monitor_id, "pause")).status_code == 404
    assert bob_api.post(monitor_url(monitor_id, "resume")).status_code == 404
    assert bob_api.post(monitor_url(monitor_id, "check")).status_code == 404
    assert bob_api.delete(monitor_url(monitor_id)).status_code == 404

    assert alice_api.get(monitor_url(monitor_id)).json() == before
    assert periodic_task(monitor_id).enabled is True
    assert IssuedTask.objects.count() == 0


def test_lists_show_only_the_callers_own_monitors_and_results(alice_api, bob_api):
    alices = create(alice_api, name="alice's")["id"]
    bobs = create(bob_api, name="bob's")["id"]
    result_for(alices, minutes_ago=1)
    bobs_result = result_for(bobs, minutes_ago=1)

    assert [m["id"] for m in bob_api.get(MONITORS).json()["results"]] == [bobs]
    assert [r["id"] for r in bob_api.get(RESULTS).json()["results"]] == [bobs_result.pk]
    filtered = bob_api.get(RESULTS, {"monitor": alices})
    assert filtered.status_code == 200
    assert filtered.json()["results"] == []


# --- token endpoint (throttling: test_api_throttling.py) --------------------------------------------------------


def test_the_token_endpoint_exchanges_a_password_for_a_working_token(alice):
    client = APIClient()

    response = client.post("/api/v1/auth/token/", {"username": "alice", "password": "alice-password-1"},
                           format="json")

    assert response.status_code == 200
    token = response.json()["token"]
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.get(MONITORS).status_code == 200


def test_a_wrong_password_gets_no_token(alice):
    response = APIClient().post("/api/v1/auth/token/", {"username": "alice", "password": "guess"}, format="json")

    assert response.status_code == 400
    assert "token" not in response.json()
