"""Maintenance windows: when they are active, the `maintenance` status, silenced and deferred alerts, the API."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from lookout.alerting.maintenance import WindowSpec, cron_window_active, maintenance_sync, window_create, window_delete
from lookout.alerting.models import AlertEvent, Incident, MaintenanceWindow, Notification
from lookout.monitors import services
from lookout.monitors.models import Monitor
from support.alerting import monitor_for, run, webhook_channel
from support.api_errors import field_errors

WINDOWS = "/api/v1/maintenance-windows/"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(("now", "active"), [
    ("2026-03-03 01:59", False), ("2026-03-03 02:00", True), ("2026-03-03 02:59", True), ("2026-03-03 03:00", False),
])
def test_a_recurring_window_is_active_from_each_occurrence_for_its_duration(now, active):
    assert cron_window_active(cron="0 2 * * *", tz="UTC", duration_seconds=3600, now=at(now)) is active


def test_a_recurring_window_follows_its_time_zone_and_day_of_week():
    # Sundays 23:30 in Paris (UTC+1 in winter) for two hours: across midnight into Monday.
    window = {"cron": "30 23 * * sun", "tz": "Europe/Paris", "duration_seconds": 7200}
    assert cron_window_active(**window, now=at("2026-03-01 22:45"))  # Sunday 23:45 in Paris
    assert cron_window_active(**window, now=at("2026-03-02 00:15"))  # Monday 01:15 in Paris
    assert not cron_window_active(**window, now=at("2026-03-02 00:31"))
    assert not cron_window_active(**window, now=at("2026-03-03 22:45"))  # a Tuesday


def test_a_week_long_recurring_window_is_found_quickly():
    assert cron_window_active(cron="59 23 * * mon", tz="UTC", duration_seconds=7 * 86400 - 60,
                              now=at("2026-03-08 12:00"))


@pytest.mark.django_db
def test_a_window_silences_alerts_and_shows_maintenance_while_probes_are_still_recorded(alice, webhook):
    monitor = monitor_for(alice, channels=[webhook_channel(alice, webhook.url)], failure_threshold=2)
    window_create(owner=alice, spec=WindowSpec(monitor=monitor.pk, starts_at=timezone.now() - timedelta(minutes=1),
                  ends_at=timezone.now() + timedelta(hours=1)))
    assert Monitor.objects.get(pk=monitor.pk).status == "maintenance"

    run(monitor, "DDDUU")

    assert monitor.results.count() == 5
    incident = Incident.objects.get()
    assert incident.alerts_deferred and incident.ended_at is not None
    assert not Notification.objects.exists()
    monitor.refresh_from_db()
    assert (monitor.status, monitor.health) == ("maintenance", "up")


@pytest.mark.django_db
def test_an_incident_still_open_when_the_window_ends_alerts_then(alice, webhook):
    monitor = monitor_for(alice, channels=[webhook_channel(alice, webhook.url)], failure_threshold=1)
    window = window_create(owner=alice, spec=WindowSpec(monitor=None, starts_at=timezone.now() - timedelta(minutes=1),
                           ends_at=timezone.now() + timedelta(hours=1)))
    run(monitor, "DD")
    assert not Notification.objects.exists()

    window_delete(window=window)

    assert Monitor.objects.get(pk=monitor.pk).status == "down"
    [down] = Notification.objects.all()
    assert (down.event, down.incident.alerts_deferred) == (AlertEvent.MONITOR_DOWN, False)
    assert maintenance_sync() == (0, 0, 0)  # sent once, not at every sweep


@pytest.mark.django_db
def test_the_sweep_moves_monitors_into_and_out_of_maintenance_as_windows_start_and_end(alice, bob):
    mine, theirs = monitor_for(alice), monitor_for(bob)
    MaintenanceWindow.objects.create(owner=alice, cron="0 2 * * *", duration_seconds=3600)

    assert maintenance_sync(now=at("2026-03-03 02:10"))[:2] == (1, 0)
    assert (Monitor.objects.get(pk=mine.pk).status, Monitor.objects.get(pk=theirs.pk).status) == (
        "maintenance", "pending")
    assert maintenance_sync(now=at("2026-03-03 03:10"))[:2] == (0, 1)
    assert Monitor.objects.get(pk=mine.pk).status == "pending"


@pytest.mark.django_db
def test_a_paused_monitor_stays_paused_through_a_window(alice):
    monitor = services.monitor_pause(monitor=monitor_for(alice))
    window_create(owner=alice, spec=WindowSpec(starts_at=timezone.now(), ends_at=timezone.now() + timedelta(hours=1)))
    assert Monitor.objects.get(pk=monitor.pk).status == "paused"


@pytest.mark.django_db
def test_the_api_creates_lists_and_deletes_windows_of_both_kinds(alice_api, alice):
    monitor = monitor_for(alice)
    now = timezone.now()
    one_off = alice_api.post(WINDOWS, {"name": "deploy", "monitor": monitor.pk, "starts_at": now.isoformat(),
                                       "ends_at": (now + timedelta(hours=1)).isoformat()}, format="json")
    assert one_off.status_code == 201, one_off.content
    assert one_off.json()["active"] is True
    assert alice_api.get(f"/api/v1/monitors/{monitor.pk}/").json()["status"] == "maintenance"
    recurring = alice_api.post(WINDOWS, {"cron": "0 3 * * sun", "timezone": "Europe/Paris",
                                         "duration_seconds": 1800}, format="json")
    assert recurring.status_code == 201, recurring.content
    assert recurring.json()["monitor"] is None

    assert alice_api.get(WINDOWS).json()["count"] == 2
    assert alice_api.delete(f"{WINDOWS}{one_off.json()['id']}/").status_code == 204
    assert alice_api.get(f"/api/v1/monitors/{monitor.pk}/").json()["status"] == "pending"


@pytest.mark.django_db
@pytest.mark.parametrize("body", [
    {"starts_at": "2026-03-01T12:00:00Z", "ends_at": "2026-03-01T11:00:00Z"},
    {"starts_at": "2026-03-01T12:00:00Z", "ends_at": "2026-03-01T12:00:00Z"},
    {"starts_at": "2026-03-01T12:00:00Z"},
    {"cron": "0 3 * * *"},
    {"cron": "0 3 * *", "duration_seconds": 600},
    {"cron": "0 3 * * *", "duration_seconds": 10},
    {"cron": "0 3 * * *", "duration_seconds": 600, "timezone": "Mars/Olympus"},
    {"cron": "0 3 * * *", "duration_seconds": 600, "starts_at": "2026-03-01T12:00:00Z",
     "ends_at": "2026-03-01T13:00:00Z"},
    {},
    {"cron": "0 3 * * *", "duration_seconds": 600, "owner": 1},
])
def test_bad_windows_are_a_clear_400_and_nothing_changes(alice_api, body):
    response = alice_api.post(WINDOWS, body, format="json")

    assert response.status_code == 400, response.content
    assert response.json()
    assert not MaintenanceWindow.objects.exists()


@pytest.mark.django_db
def test_a_window_end_before_its_start_says_so(alice_api):
    response = alice_api.post(WINDOWS, {"starts_at": "2026-03-01T12:00:00Z", "ends_at": "2026-03-01T11:00:00Z"},
                              format="json")
    assert field_errors(response) == {"ends_at": ["The window must end after it starts."]}


@pytest.mark.django_db
def test_windows_are_owner_scoped_and_cannot_name_someone_elses_monitor(alice_api, bob_api, bob):
    theirs = monitor_for(bob)
    response = alice_api.post(WINDOWS, {"monitor": theirs.pk, "cron": "0 3 * * *", "duration_seconds": 600},
                              format="json")
    assert response.status_code == 400 and "does not exist" in response.json()["monitor"][0]

    bobs = bob_api.post(WINDOWS, {"cron": "0 3 * * *", "duration_seconds": 600}, format="json").json()
    assert alice_api.get(f"{WINDOWS}{bobs['id']}/").status_code == 404
    assert alice_api.delete(f"{WINDOWS}{bobs['id']}/").status_code == 404
    assert alice_api.get(WINDOWS).json()["count"] == 0


@pytest.mark.django_db
def test_a_window_can_switch_kinds_by_sending_null_for_the_other(alice_api):
    window = alice_api.post(WINDOWS, {"cron": "0 3 * * *", "duration_seconds": 600}, format="json").json()

    assert alice_api.patch(f"{WINDOWS}{window['id']}/", {"starts_at": "2026-03-01T12:00:00Z",
                                                         "ends_at": "2026-03-01T13:00:00Z"},
                           format="json").status_code == 400
    switched = alice_api.patch(f"{WINDOWS}{window['id']}/", {
        "starts_at": "2026-03-01T12:00:00Z", "ends_at": "2026-03-01T13:00:00Z", "cron": None,
        "duration_seconds": None}, format="json")
    assert switched.status_code == 200, switched.content
    assert switched.json()["cron"] is None
