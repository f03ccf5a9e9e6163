"""Monitor types (http, tcp, dns, push), probe options, write-only secrets and safe targets through the API."""

import ipaddress
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from lookout.monitors import services
from lookout.monitors.models import Monitor, MonitorEvent, MonitorStatus, ProbeResult
from lookout.monitors.spec import MonitorSpec
from lookout.probes import push, results

pytestmark = pytest.mark.django_db

MONITORS = "/api/v1/monitors/"


def create(client, **fields):
    return client.post(MONITORS, {"name": "typed", "interval": 60, **fields}, format="json")


def test_a_tcp_monitor_takes_a_tcp_url_with_a_port(alice_api):
    response = create(alice_api, type="tcp", url="tcp://127.0.0.1:5432", send="PING\r\n", expect="PONG")
    assert response.status_code == 201, response.content
    assert response.json()["type"] == "tcp"
    assert response.json()["send"] == "PING\r\n"


@pytest.mark.parametrize("url", ["tcp://127.0.0.1", "http://127.0.0.1:80", "tcp://:80", "tcp://host:99999"])
def test_a_tcp_monitor_refuses_anything_but_tcp_host_port(alice_api, url):
    response = create(alice_api, type="tcp", url=url)
    assert response.status_code == 400
    assert "url" in response.json()
    assert Monitor.objects.count() == 0


@pytest.mark.parametrize("url", ["dns://127.0.0.1:5353/example.test", "dns:///example.test"])
def test_a_dns_monitor_takes_a_resolver_and_a_name(alice_api, url):
    response = create(alice_api, type="dns", url=url, record_type="MX", expected_answer="mail.example.test")
    assert response.status_code == 201, response.content
    assert response.json()["record_type"] == "MX"


@pytest.mark.parametrize(("fields", "field"), [
    ({"url": "dns://127.0.0.1/"}, "url"),
    ({"url": "https://example.test/"}, "url"),
    ({"url": "dns:///example.test", "record_type": "SRV"}, "record_type"),
])
def test_a_dns_monitor_refuses_a_bad_url_or_record_type(alice_api, fields, field):
    response = create(alice_api, type="dns", **fields)
    assert response.status_code == 400
    assert field in response.json()


def test_a_push_monitor_has_a_push_url_and_no_periodic_task(alice_api):
    response = create(alice_api, type="push", grace=30)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["push_url"].startswith("http://testserver/api/v1/push/")
    assert body["url"] == ""
    monitor = Monitor.objects.get(pk=body["id"])
    assert monitor.periodic_task is None
    assert PeriodicTask.objects.filter(name=f"monitor:{monitor.pk}").count() == 0
    assert monitor.push_deadline > timezone.now() + timedelta(seconds=85)


@pytest.mark.parametrize(("fields", "field"), [
    ({"url": "https://example.com/"}, "url"),
    ({"interval": None, "cron": "*/5 * * * *"}, "cron"),
])
def test_a_push_monitor_refuses_a_url_or_a_crontab(alice_api, fields, field):
    response = create(alice_api, type="push", **fields)
    assert response.status_code == 400
    assert field in response.json()


def test_a_push_monitor_cannot_be_checked_now(alice_api):
    monitor = create(alice_api, type="push").json()
    response = alice_api.post(f"{MONITORS}{monitor['id']}/check/")
    assert response.status_code == 400
    assert "push" in response.json()["detail"]


def test_the_type_of_a_monitor_cannot_change(alice_api):
    monitor = create(alice_api, url="https://example.com/").json()
    response = alice_api.patch(f"{MONITORS}{monitor['id']}/", {"type": "tcp", "url": "tcp://example.com:1"},
                               format="json")
    assert response.status_code == 400
    assert Monitor.objects.get(pk=monitor["id"]).type == "http"


def test_a_heartbeat_records_a_success_and_brings_the_push_monitor_up(alice_api, client):
    monitor = create(alice_api, type="push").json()
    response = client.post(monitor["push_url"].removeprefix("http://testserver"))
    assert response.status_code == 200
    assert response.json() == {"ok": True}
    assert client.get(monitor["push_url"].removeprefix("http://testserver")).status_code == 200
    assert ProbeResult.objects.filter(monitor_id=monitor["id"], success=True).count() == 2
    assert Monitor.objects.get(pk=monitor["id"]).status == MonitorStatus.UP


def test_a_heartbeat_with_an_unknown_token_is_a_404(client):
    assert client.post("/api/v1/push/not-a-token").status_code == 404


def test_the_sweep_takes_down_only_push_monitors_whose_heartbeat_is_overdue(alice):
    late = services.monitor_create(owner=alice, spec=MonitorSpec(name="late", type="push", interval=60, grace=10,
                                                                 failure_threshold=1))
    fresh = services.monitor_create(owner=alice, spec=MonitorSpec(name="fresh", type="push", interval=60, grace=10))
    paused = services.monitor_pause(monitor=services.monitor_create(owner=alice, spec=MonitorSpec(name="paused",
                                                                                                  type="push",
                                                                   interval=60, grace=10)))
    Monitor.objects.filter(pk=late.pk).update(push_deadline=timezone.now() - timedelta(seconds=1))

    assert push.push_sweep() == 1
    assert push.push_sweep() == 0  # the next deadline is one interval later, not a failure per sweep

    late.refresh_from_db()
    assert late.status == MonitorStatus.DOWN
    failure = ProbeResult.objects.get(monitor=late)
    assert not failure.success and "no heartbeat" in failure.error
    assert Monitor.objects.get(pk=fresh.pk).status == MonitorStatus.PENDING
    assert Monitor.objects.get(pk=paused.pk).status == MonitorStatus.PAUSED


def test_an_overdue_heartbeat_failure_names_the_last_heartbeat_not_the_deadline(alice):
    monitor = services.monitor_create(owner=alice, spec=MonitorSpec(name="job", type="push", interval=60, grace=10))
    beat_at = timezone.now() - timedelta(minutes=5)
    push.push_receive(token=monitor.push_token)
    ProbeResult.objects.filter(monitor=monitor, success=True).update(checked_at=beat_at)
    Monitor.objects.filter(pk=monitor.pk).update(push_deadline=timezone.now() - timedelta(seconds=1))

    assert push.push_sweep() == 1

    failure = ProbeResult.objects.get(monitor=monitor, success=False)
    assert failure.error == f"no heartbeat since {beat_at:%Y-%m-%d %H:%M:%S} UTC (interval + grace passed)"


def test_an_overdue_push_monitor_that_never_had_a_heartbeat_says_so(alice):
    monitor = services.monitor_create(owner=alice, spec=MonitorSpec(name="job", type="push", interval=60, grace=10))
    Monitor.objects.filter(pk=monitor.pk).update(push_deadline=timezone.now() - timedelta(seconds=1))

    assert push.push_sweep() == 1

    assert ProbeResult.objects.get(monitor=monitor).error == "no heartbeat on record (interval + grace passed)"


def test_secret_headers_and_the_basic_auth_password_are_write_only_and_encrypted_at_rest(alice_api):
    response = create(alice_api, url="https://example.com/", headers={"X-Plain": "visible"},
                      secret_headers={"Authorization": "Bearer s3cr3t-value"},
                      basic_auth_username="bot", basic_auth_password="hunter2-password")
    assert response.status_code == 201, response.content
    body = response.json()
    assert "secret_headers" not in body and "basic_auth_password" not in body
    assert body["secret_header_names"] == ["Authorization"]
    assert body["basic_auth_password_set"] is True
    assert "s3cr3t-value" not in str(alice_api.get(f"{MONITORS}{body['id']}/").content)
    stored = Monitor.objects.get(pk=body["id"])
    assert "s3cr3t-value" not in stored.secret_headers and stored.secret_headers
    assert "hunter2-password" not in stored.basic_auth_password and stored.basic_auth_password


def test_a_patch_without_secret_headers_keeps_them(alice_api):
    monitor = create(alice_api, url="https://example.com/", secret_headers={"X-Key": "k"}).json()
    alice_api.patch(f"{MONITORS}{monitor['id']}/", {"name": "renamed"}, format="json")
    assert alice_api.get(f"{MONITORS}{monitor['id']}/").json()["secret_header_names"] == ["X-Key"]


@pytest.mark.parametrize("conditions", [["[STATUS] == 200", "[BODY].status == \"UP\""],
                                        ["[RESPONSE_TIME] < 300", "[CERTIFICATE_EXPIRATION] > 48h"]])
def test_valid_conditions_are_accepted(alice_api, conditions):
    response = create(alice_api, url="https://example.com/", conditions=conditions)
    assert response.status_code == 201, response.content
    assert response.json()["conditions"] == conditions


@pytest.mark.parametrize("condition", ["[STATUS] === 200", "[NOPE] == 1", "[STATUS] ==", "__import__('os')"])
def test_an_invalid_condition_is_a_400_naming_the_problem(alice_api, condition):
    response = create(alice_api, url="https://example.com/", conditions=[condition])
    assert response.status_code == 400
    assert "conditions" in response.json()
    assert Monitor.objects.count() == 0


@pytest.mark.parametrize(("fields", "field"), [
    ({"max_redirects": 11}, "max_redirects"), ({"max_body_bytes": 0}, "max_body_bytes"),
    ({"ip_version": 5}, "ip_version"), ({"tls_expiry_days": -1}, "tls_expiry_days"),
    ({"body": "x" * 70000}, "body"), ({"verify_tls": "perhaps"}, "verify_tls"),
])
def test_bad_probe_options_are_refused(alice_api, fields, field):
    response = create(alice_api, url="https://example.com/", **fields)
    assert response.status_code == 400
    assert field in response.json()


@pytest.fixture
def default_target_policy(settings):
    settings.LOOKOUT_ALLOW_PRIVATE_TARGETS = False
    settings.LOOKOUT_TARGET_ALLOWLIST = ()


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/", "http://10.1.2.3/", "http://192.168.1.1/", "http://172.16.0.5/",
    "http://169.254.169.254/latest/meta-data/", "http://[::1]/", "http://[fd00::1]/", "http://0.0.0.0/",
    "http://224.0.0.1/", "http://localhost:8080/", "tcp://127.0.0.1:22", "dns://10.0.0.53/example.test",
])
def test_private_and_internal_targets_are_refused_by_default(alice_api, default_target_policy, url):
    monitor_type = url.split("://")[0] if url.startswith(("tcp", "dns")) else "http"
    response = create(alice_api, type=monitor_type, url=url)
    assert response.status_code == 400, response.content
    assert "url" in response.json()
    assert Monitor.objects.count() == 0


def test_the_allowlist_opens_a_private_range(alice_api, default_target_policy, settings):
    settings.LOOKOUT_TARGET_ALLOWLIST = (ipaddress.ip_network("10.0.0.0/8"),)
    assert create(alice_api, url="http://10.1.2.3/").status_code == 201
    assert create(alice_api, url="http://192.168.1.1/").status_code == 400


def test_a_result_carries_phases_tls_facts_and_the_failed_condition(alice, alice_api):
    monitor = services.monitor_create(owner=alice, spec=MonitorSpec(name="tls", url="https://example.com/",
                                                                    interval=60))
    not_after = timezone.now() + timedelta(days=40)
    results.probe_result_record(monitor_id=monitor.pk, record=results.ProbeRecord(
        checked_at=timezone.now(), success=False, status_code=200, response_time_ms=42.0,
        error="condition failed: [STATUS] == 204", task_id=str(uuid.uuid4()), failed_condition="[STATUS] == 204",
        phases={"dns": 1.0, "connect": 2.0, "tls": 10.0, "processing": 25.0, "transfer": 4.0},
        tls={"not_after": not_after.isoformat(), "issuer": "CN=Test CA", "subject": "CN=example.com"},
        tls_not_after=not_after, tls_fingerprint="abc",
    ))
    result = alice_api.get(f"/api/v1/results/?monitor={monitor.pk}").json()["results"][0]
    assert result["phases"] == {"dns": 1.0, "connect": 2.0, "tls": 10.0, "processing": 25.0, "transfer": 4.0}
    assert result["tls"]["issuer"] == "CN=Test CA"
    assert result["failed_condition"] == "[STATUS] == 204"
    detail = alice_api.get(f"{MONITORS}{monitor.pk}/").json()
    assert detail["tls_expires_at"] is not None
    assert detail["last_phases"]["processing"] == 25.0


def _record_certificate(monitor, *, days_left: float, fingerprint: str) -> None:
    now = timezone.now()
    results.probe_result_record(monitor_id=monitor.pk, record=results.ProbeRecord(
        checked_at=now, success=True, status_code=200, response_time_ms=5.0, error="", task_id="",
        tls={"subject": "CN=a", "issuer": "CN=ca"}, tls_not_after=now + timedelta(days=days_left),
        tls_fingerprint=fingerprint,
    ))


def test_an_expiring_certificate_raises_one_tls_expiring_event_per_certificate(alice, alice_api, bob_api):
    monitor = services.monitor_create(owner=alice, spec=MonitorSpec(name="tls", url="https://example.com/", interval=60,
                                      tls_expiry_days=14))
    _record_certificate(monitor, days_left=30, fingerprint="far")
    assert MonitorEvent.objects.count() == 0
    _record_certificate(monitor, days_left=10, fingerprint="old-cert")
    _record_certificate(monitor, days_left=9.9, fingerprint="old-cert")
    _record_certificate(monitor, days_left=5, fingerprint="renewed-but-short")
    events = alice_api.get(f"/api/v1/events/?monitor={monitor.pk}").json()
    assert events["count"] == 2
    assert {e["kind"] for e in events["results"]} == {"tls.expiring"}
    assert bob_api.get("/api/v1/events/").json()["count"] == 0


def test_tls_expiry_days_zero_turns_the_warning_off(alice):
    monitor = services.monitor_create(owner=alice, spec=MonitorSpec(name="tls", url="https://example.com/", interval=60,
                                      tls_expiry_days=0))
    _record_certificate(monitor, days_left=1, fingerprint="x")
    assert MonitorEvent.objects.count() == 0
