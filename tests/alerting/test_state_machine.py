"""The state machine: thresholds confirm transitions, incidents open and close with them, one alert each."""

import threading
from dataclasses import replace
from datetime import timedelta

import pytest
from django.db import connection

from lookout.alerting.models import AlertEvent, Incident, Notification
from lookout.alerting.services import ChannelSpec, channel_create
from lookout.alerting.state import state_step
from lookout.monitors import services
from lookout.monitors.models import Monitor, MonitorHealth
from lookout.monitors.spec import monitor_spec
from support.alerting import T0, monitor_for, record, run, webhook_channel
from support.api_errors import field_errors

MINUTE = timedelta(seconds=60)


def steps(pattern: str, *, failure_threshold: int = 2, recovery_threshold: int = 1, health: str = "up") -> list:
    state = {"health": health, "consecutive_failures": 0, "consecutive_successes": 0, "streak_started_at": None}
    out = []
    for index, char in enumerate(pattern):
        step = state_step(**state, failure_threshold=failure_threshold, recovery_threshold=recovery_threshold,
                          success=char == "U", checked_at=T0 + index * MINUTE)
        state = {"health": step.health, "consecutive_failures": step.consecutive_failures,
                 "consecutive_successes": step.consecutive_successes, "streak_started_at": step.streak_started_at}
        out.append(step)
    return out


def test_it_goes_down_only_after_failure_threshold_failures_in_a_row():
    result = steps("UDDD", failure_threshold=3)
    assert [s.health for s in result] == ["up", "up", "up", "down"]
    assert [s.went_down for s in result] == [False, False, False, True]
    assert result[-1].streak_started_at == T0 + MINUTE  # the downtime began at the first failure


def test_a_flapping_target_never_goes_down():
    result = steps("UDUDUDUDUD", failure_threshold=2)
    assert {s.health for s in result} == {"up"}
    assert not any(s.went_down or s.went_up for s in result)


def test_it_comes_back_up_only_after_recovery_threshold_successes_in_a_row():
    result = steps("DDUDUUU", failure_threshold=2, recovery_threshold=3)
    assert [s.health for s in result] == ["up", "down", "down", "down", "down", "down", "up"]
    assert result[-1].went_up and result[-1].streak_started_at == T0 + 4 * MINUTE


def test_a_pending_monitor_is_up_after_one_success_whatever_the_recovery_threshold():
    result = steps("U", recovery_threshold=5, health="pending")
    assert result[0].health == "up" and not result[0].went_up


@pytest.mark.django_db
def test_an_incident_spans_from_the_first_failure_to_the_first_success_with_one_alert_each(alice, webhook):
    hook = webhook_channel(alice, webhook.url)
    default = channel_create(owner=alice, spec=ChannelSpec(name="ops mail", kind="email", address="ops@example.com",
                                                           is_default=True))
    monitor = monitor_for(alice, channels=[hook], failure_threshold=2)

    run(monitor, "UUD")
    assert not Incident.objects.exists() and Monitor.objects.get(pk=monitor.pk).status == "up"
    run(monitor, "DDDD", start=T0 + 3 * MINUTE)  # crosses the threshold once, then stays down

    incident = Incident.objects.get()
    assert (incident.started_at, incident.detected_at, incident.ended_at) == (T0 + 2 * MINUTE, T0 + 3 * MINUTE, None)
    assert incident.cause == "HTTP 503"
    assert Monitor.objects.get(pk=monitor.pk).status == "down"
    downs = Notification.objects.filter(event=AlertEvent.MONITOR_DOWN)
    assert sorted(downs.values_list("channel_id", flat=True)) == sorted([hook.pk, default.pk])

    run(monitor, "UUU", start=T0 + 7 * MINUTE)

    incident.refresh_from_db()
    assert incident.ended_at == T0 + 7 * MINUTE
    assert (incident.ended_at - incident.started_at) == 5 * MINUTE
    ups = Notification.objects.filter(event=AlertEvent.MONITOR_UP)
    assert sorted(ups.values_list("channel_id", flat=True)) == sorted([hook.pk, default.pk])
    assert Notification.objects.count() == 4  # exactly one down and one up per channel
    assert Monitor.objects.get(pk=monitor.pk).status == "up"


@pytest.mark.django_db
def test_a_channel_added_to_the_monitor_later_is_not_told_about_the_recovery_alone(alice):
    first = webhook_channel(alice, "http://127.0.0.1:9/a")
    monitor = monitor_for(alice, channels=[first], failure_threshold=1)
    run(monitor, "D")
    later = webhook_channel(alice, "http://127.0.0.1:9/b")
    services.monitor_update(monitor=monitor, spec=replace(monitor_spec(monitor), channels=[first.pk, later.pk]))

    run(monitor, "U", start=T0 + MINUTE)

    # Up goes where down went: a receiver never gets a recovery for an outage it never heard of.
    assert list(Notification.objects.filter(event=AlertEvent.MONITOR_UP).values_list("channel_id", flat=True)) == [
        first.pk]


@pytest.mark.django_db
def test_results_of_a_paused_monitor_and_late_results_do_not_move_its_state(alice):
    monitor = monitor_for(alice, failure_threshold=1)
    run(monitor, "U")
    record(monitor, at=T0 - MINUTE, success=False)  # older than the last one: stored, state untouched
    assert Monitor.objects.get(pk=monitor.pk).health == MonitorHealth.UP

    services.monitor_pause(monitor=monitor)
    run(monitor, "DDD", start=T0 + MINUTE)

    monitor.refresh_from_db()
    assert (monitor.status, monitor.health) == ("paused", "up")
    assert not Incident.objects.exists()


@pytest.mark.django_db
def test_thresholds_are_monitor_fields_of_the_api_with_defaults_and_bounds(alice_api):
    created = alice_api.post("/api/v1/monitors/", {"name": "a", "url": "https://example.com/", "interval": 60},
                             format="json").json()
    assert (created["failure_threshold"], created["recovery_threshold"], created["channels"]) == (2, 1, [])
    for bad in ({"failure_threshold": 0}, {"recovery_threshold": 101}, {"failure_threshold": True}):
        response = alice_api.patch(f"/api/v1/monitors/{created['id']}/", bad, format="json")
        assert response.status_code == 400, bad
        assert set(field_errors(response)) == set(bad)
    assert alice_api.patch(f"/api/v1/monitors/{created['id']}/", {"failure_threshold": 5},
                           format="json").json()["failure_threshold"] == 5


@pytest.mark.django_db(transaction=True)
def test_concurrent_failures_for_one_monitor_open_exactly_one_incident(alice):
    hook = webhook_channel(alice, "http://127.0.0.1:9/hook")
    monitor = monitor_for(alice, channels=[hook], failure_threshold=3)
    barrier = threading.Barrier(6)

    def fail() -> None:
        try:
            barrier.wait()
            record(monitor, at=T0, success=False)  # one instant: none is "older" than another
        finally:
            connection.close()

    threads = [threading.Thread(target=fail) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # The row lock serializes the six results: the threshold is crossed exactly once.
    assert Incident.objects.filter(monitor=monitor).count() == 1
    assert Notification.objects.filter(event=AlertEvent.MONITOR_DOWN).count() == 1
    assert Monitor.objects.get(pk=monitor.pk).consecutive_failures == 6
