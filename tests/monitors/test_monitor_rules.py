"""The monitor rules hold for every caller: a monitor created or changed through the services, without the API
(a shell, monitors kept as code), is refused exactly as the API refuses it, and nothing is written."""

from dataclasses import replace

import pytest
from django_celery_beat.models import PeriodicTask

from lookout.alerting.services import ChannelSpec, channel_create
from lookout.core.errors import ValidationFailed
from lookout.monitors import services
from lookout.monitors.models import Monitor
from lookout.monitors.spec import MonitorSpec, monitor_spec

pytestmark = pytest.mark.django_db

GOOD = {"name": "shop", "url": "https://shop.example/health", "interval": 60}

BAD_SPECS = [
    pytest.param({"url": "ftp://example.com/file"}, "url", id="ftp-url"),
    pytest.param({"url": "javascript:alert(1)"}, "url", id="javascript-url"),
    pytest.param({"url": "http://"}, "url", id="url-without-host"),
    pytest.param({"url": "http://exa mple.com/"}, "url", id="url-with-a-space"),
    pytest.param({"url": "https://example.com/" + "a" * 2048}, "url", id="url-over-2048"),
    pytest.param({"url": "http://127.0.0.1/"}, "url", id="loopback-target"),
    pytest.param({"name": ""}, "name", id="blank-name"),
    pytest.param({"name": "n" * 201}, "name", id="name-over-200"),
    pytest.param({"interval": 0}, "interval", id="interval-zero"),
    pytest.param({"interval": 9}, "interval", id="interval-below-min"),
    pytest.param({"interval": 7 * 24 * 3600 + 1}, "interval", id="interval-above-7-days"),
    pytest.param({"interval": True}, "interval", id="interval-boolean"),
    pytest.param({"cron": "*/5 * * * *"}, "interval", id="both-interval-and-cron"),
    pytest.param({"interval": None}, "interval", id="neither-interval-nor-cron"),
    pytest.param({"interval": None, "cron": "61 * * * *"}, "cron", id="cron-minute-61"),
    pytest.param({"interval": None, "cron": "* * *"}, "cron", id="cron-3-fields"),
    pytest.param({"interval": None, "cron": "0 0 * * *", "timezone": "Mars/Olympus"}, "timezone", id="bad-zone"),
    pytest.param({"interval": 20, "timeout": 21}, "timeout", id="timeout-above-interval"),
    pytest.param({"timeout": 0}, "timeout", id="timeout-zero"),
    pytest.param({"method": "TRACE"}, "method", id="unknown-method"),
    pytest.param({"type": "ftp"}, "type", id="unknown-type"),
    pytest.param({"expected_status": [99]}, "expected_status", id="expected-status-99"),
    pytest.param({"expected_status": []}, "expected_status", id="expected-status-empty"),
    pytest.param({"headers": {"Bad Name": "x"}}, "headers", id="header-name-with-space"),
    pytest.param({"secret_headers": {"X-Ok": "a\r\nInjected: 1"}}, "secret_headers", id="header-value-crlf"),
    pytest.param({"conditions": ["[STATUS] === 200"]}, "conditions", id="bad-condition"),
    pytest.param({"max_redirects": 11}, "max_redirects", id="too-many-redirects"),
    pytest.param({"failure_threshold": 0}, "failure_threshold", id="threshold-zero"),
    pytest.param({"record_type": "SRV"}, "record_type", id="unknown-record-type"),
    pytest.param({"ip_version": 5}, "ip_version", id="ip-version-5"),
    pytest.param({"type": "push", "url": "https://example.com/"}, "url", id="push-with-url"),
    pytest.param({"type": "push", "url": "", "interval": None, "cron": "* * * * *"}, "cron", id="push-on-cron"),
    pytest.param({"type": "tcp", "url": "tcp://db.example"}, "url", id="tcp-without-port"),
    pytest.param({"type": "dns", "url": "dns://1.1.1.1/"}, "url", id="dns-without-name"),
]


@pytest.fixture
def default_target_policy(settings):
    settings.LOOKOUT_ALLOW_PRIVATE_TARGETS = False


@pytest.mark.parametrize(("overrides", "field"), BAD_SPECS)
def test_a_monitor_breaking_a_rule_is_refused_by_the_service_and_nothing_is_written(
        alice, default_target_policy, overrides, field):
    with pytest.raises(ValidationFailed) as refused:
        services.monitor_create(owner=alice, spec=MonitorSpec(**{**GOOD, **overrides}))

    assert field in refused.value.errors, refused.value.errors
    assert (Monitor.objects.count(), PeriodicTask.objects.filter(task__startswith="lookout.probes").count()) == (0, 0)


@pytest.mark.parametrize(("overrides", "field"), BAD_SPECS)
def test_the_api_refuses_the_same_monitors_with_the_same_field(alice_api, default_target_policy, overrides, field):
    response = alice_api.post("/api/v1/monitors/", {**GOOD, **overrides}, format="json")

    assert response.status_code == 400, response.content
    assert field in response.json(), response.json()
    assert response.json()["code"] == "invalid"


def test_every_broken_rule_is_reported_at_once(alice):
    with pytest.raises(ValidationFailed) as refused:
        services.monitor_create(owner=alice, spec=MonitorSpec(name="", url="ftp://x", interval=1, method="TRACE"))

    assert set(refused.value.errors) == {"name", "url", "interval", "method"}


def test_a_change_breaking_a_rule_leaves_the_monitor_and_its_schedule_as_they_were(alice):
    monitor = services.monitor_create(owner=alice, spec=MonitorSpec(**GOOD))

    with pytest.raises(ValidationFailed) as refused:
        services.monitor_update(monitor=monitor, spec=replace(monitor_spec(monitor), interval=30, timeout=31))

    assert set(refused.value.errors) == {"timeout"}
    monitor.refresh_from_db()
    assert (monitor.interval, monitor.periodic_task.interval.every) == (60, 60)


def test_the_type_of_a_monitor_cannot_change_through_the_service(alice):
    monitor = services.monitor_create(owner=alice, spec=MonitorSpec(**GOOD))

    with pytest.raises(ValidationFailed) as refused:
        services.monitor_update(monitor=monitor, spec=replace(monitor_spec(monitor), type="tcp",
                                                              url="tcp://shop.example:443"))

    assert "type" in refused.value.errors


def test_another_owners_channel_is_refused_and_the_monitor_is_not_created(alice, bob):
    bobs = channel_create(owner=bob, spec=ChannelSpec(name="bob's", kind="email", address="bob@example.com"))

    with pytest.raises(ValidationFailed) as refused:
        services.monitor_create(owner=alice, spec=MonitorSpec(**GOOD, channels=[bobs.pk]))

    assert "channels" in refused.value.errors
    assert Monitor.objects.count() == 0


def test_a_single_label_host_such_as_a_kubernetes_service_is_a_valid_url(alice):
    monitor = services.monitor_create(owner=alice, spec=MonitorSpec(**{**GOOD, "url": "http://myservice:8080/"}))

    assert monitor.url == "http://myservice:8080/"


def test_a_stored_monitor_is_normalized_as_the_api_stored_it(alice):
    monitor = services.monitor_create(owner=alice, spec=MonitorSpec(
        name="cron", url="https://shop.example/", cron="0  */2 * * *", keyword=""))

    assert (monitor.cron, monitor.keyword, monitor.timeout) == ("0 */2 * * *", None, 10.0)
