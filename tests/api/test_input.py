"""The input rules every API shares (lookout.api.input), through the endpoints that use them: no input is a 5xx."""

import pytest
from rest_framework import serializers

from lookout.api.input import INT64_MAX, INT64_MIN, StrictIntegerField
from lookout.monitors.models import Monitor
from support.api_errors import field_errors

pytestmark = pytest.mark.django_db

MONITORS = "/api/v1/monitors/"
CHANNELS = "/api/v1/channels/"
WINDOWS = "/api/v1/maintenance-windows/"
BEYOND_64_BITS = "99999999999999999999999"


def monitor_create(client, **overrides):
    response = client.post(MONITORS, {"name": "Example", "url": "https://example.com/health", "interval": 60,
                                      **overrides}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


# --- integers: the signed 64-bit range of a PostgreSQL bigint ------------------------------------------------


@pytest.mark.parametrize("value", [INT64_MAX + 1, -INT64_MIN + 10, 10**30, str(10**30)])
def test_a_strict_integer_beyond_64_bits_is_refused(value):
    with pytest.raises(serializers.ValidationError):
        StrictIntegerField().run_validation(value)


@pytest.mark.parametrize("value", [INT64_MIN - 1, -(10**30)])
def test_a_strict_integer_below_64_bits_is_refused(value):
    with pytest.raises(serializers.ValidationError):
        StrictIntegerField().run_validation(value)


@pytest.mark.parametrize("value", [INT64_MAX, INT64_MIN, 0, "42"])
def test_a_strict_integer_within_64_bits_is_accepted(value):
    assert StrictIntegerField().run_validation(value) == int(value)


@pytest.mark.parametrize(("path", "name"), [
    ("/api/v1/results/", "monitor"),
    ("/api/v1/events/", "monitor"),
    ("/api/v1/incidents/", "monitor"),
    ("/api/v1/notifications/", "monitor"),
    ("/api/v1/notifications/", "incident"),
    ("/api/v1/notifications/", "channel"),
])
@pytest.mark.parametrize("value", [BEYOND_64_BITS, f"-{BEYOND_64_BITS}", str(INT64_MAX + 1)])
def test_a_filter_number_beyond_64_bits_is_a_400_naming_the_filter(alice_api, path, name, value):
    response = alice_api.get(path, {name: value})

    assert response.status_code == 400, response.content
    assert set(field_errors(response)) == {name}


def test_a_filter_number_at_the_64_bit_limit_is_an_empty_list(alice_api):
    response = alice_api.get("/api/v1/results/", {"monitor": str(INT64_MAX)})

    assert response.status_code == 200
    assert response.json()["results"] == []


@pytest.mark.parametrize("path", [
    f"{MONITORS}{BEYOND_64_BITS}/",
    f"{MONITORS}{BEYOND_64_BITS}/stats/",
    f"{CHANNELS}{BEYOND_64_BITS}/",
    f"/api/v1/incidents/{BEYOND_64_BITS}/",
    f"/api/v1/notifications/{BEYOND_64_BITS}/",
    f"{WINDOWS}{BEYOND_64_BITS}/",
    f"/api/v1/results/{BEYOND_64_BITS}/",
    f"/api/v1/events/{BEYOND_64_BITS}/",
])
def test_a_path_id_beyond_64_bits_is_a_404(alice_api, path):
    response = alice_api.get(path)

    assert response.status_code == 404, response.content


@pytest.mark.parametrize("method", ["patch", "delete"])
def test_changing_a_monitor_whose_id_is_beyond_64_bits_is_a_404(alice_api, method):
    response = getattr(alice_api, method)(f"{MONITORS}{BEYOND_64_BITS}/", {"name": "x"}, format="json")

    assert response.status_code == 404, response.content


@pytest.mark.parametrize(("overrides", "field"), [
    ({"failure_threshold": 1e30}, "failure_threshold"),
    ({"failure_threshold": 10**30}, "failure_threshold"),
    ({"interval": 10**29}, "interval"),
    ({"interval": -(10**29)}, "interval"),
    ({"interval": str(10**29)}, "interval"),
    ({"grace": 10**30}, "grace"),
    ({"expected_status": [10**30]}, "expected_status"),
    ({"channels": [10**30]}, "channels"),
])
def test_a_body_integer_beyond_64_bits_is_a_400_naming_the_field(alice_api, overrides, field):
    response = alice_api.post(MONITORS, {"name": "Example", "url": "https://example.com/health", "interval": 60,
                                         **overrides}, format="json")

    assert response.status_code == 400, response.content
    assert set(field_errors(response)) == {field}
    assert not Monitor.objects.exists()


def test_a_window_duration_beyond_64_bits_is_a_400(alice_api):
    response = alice_api.post(WINDOWS, {"cron": "0 3 * * *", "duration_seconds": 10**30}, format="json")

    assert response.status_code == 400, response.content
    assert set(field_errors(response)) == {"duration_seconds"}


def test_a_window_on_a_monitor_id_beyond_64_bits_is_a_400(alice_api):
    response = alice_api.post(WINDOWS, {"cron": "0 3 * * *", "duration_seconds": 3600, "monitor": 10**30},
                              format="json")

    assert response.status_code == 400, response.content
    assert set(field_errors(response)) == {"monitor"}


# --- read-only fields ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("change", [{"status": "down"}, {"id": 999}, {"enabled": False}, {"push_url": "x"},
                                    {"last_checked_at": "2026-01-01T00:00:00Z"}, {"created_at": None}])
def test_a_read_only_monitor_field_in_a_patch_is_a_400_and_changes_nothing(alice_api, change):
    monitor = monitor_create(alice_api)
    url = f"{MONITORS}{monitor['id']}/"

    response = alice_api.patch(url, {"name": "renamed", **change}, format="json")

    assert response.status_code == 400, response.content
    assert field_errors(response) == {name: ["This field is read-only."] for name in change}
    assert alice_api.get(url).json() == monitor


def test_an_id_in_a_create_is_a_400_and_creates_nothing(alice_api):
    response = alice_api.post(MONITORS, {"id": 999, "name": "Example", "url": "https://example.com/health",
                                         "interval": 60}, format="json")

    assert response.status_code == 400
    assert field_errors(response) == {"id": ["This field is read-only."]}
    assert not Monitor.objects.exists()


def test_read_only_and_unknown_fields_are_reported_together(alice_api):
    monitor = monitor_create(alice_api)

    response = alice_api.patch(f"{MONITORS}{monitor['id']}/", {"status": "up", "owner": 2}, format="json")

    assert response.status_code == 400
    assert field_errors(response) == {"owner": ["Unknown field."], "status": ["This field is read-only."]}


def test_a_monitor_read_back_is_not_a_valid_put_body_until_its_read_only_fields_are_dropped(alice_api):
    monitor = monitor_create(alice_api)
    url = f"{MONITORS}{monitor['id']}/"
    read_only = {"id", "enabled", "status", "last_checked_at", "last_response_time_ms", "created_at", "updated_at",
                 "push_url", "secret_header_names", "basic_auth_password_set", "tls_expires_at", "last_phases",
                 "regions_status"}

    refused = alice_api.put(url, monitor, format="json")
    accepted = alice_api.put(url, {**{k: v for k, v in monitor.items() if k not in read_only}, "name": "renamed"},
                             format="json")

    assert refused.status_code == 400
    assert set(field_errors(refused)) == read_only
    assert accepted.status_code == 200, accepted.content
    assert accepted.json()["name"] == "renamed"


@pytest.mark.parametrize("change", [{"id": 999}, {"failing_since": "2026-01-01T00:00:00Z"}, {"created_at": None}])
def test_a_read_only_channel_field_is_a_400(alice_api, change):
    response = alice_api.post(CHANNELS, {"name": "ops", "kind": "email", "address": "ops@example.com", **change},
                              format="json")

    assert response.status_code == 400, response.content
    assert field_errors(response) == {name: ["This field is read-only."] for name in change}


@pytest.mark.parametrize("change", [{"id": 999}, {"active": True}, {"created_at": None}])
def test_a_read_only_maintenance_window_field_is_a_400(alice_api, change):
    response = alice_api.post(WINDOWS, {"cron": "0 3 * * *", "duration_seconds": 3600, **change}, format="json")

    assert response.status_code == 400, response.content
    assert field_errors(response) == {name: ["This field is read-only."] for name in change}


# --- crontabs ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("cron", "label"), [
    ("1,,2 * * * *", "minute"), ("*/ * * * *", "minute"), ("-1 * * * *", "minute"), (", * * * *", "minute"),
    ("1-2-3 * * * *", "minute"), ("*/5/2 * * * *", "minute"), ("1 * * * mon-", "day-of-week"),
    ("1- * * * *", "minute"), ("mon * * * *", "minute"), ("0 0 * * fri-mon", "day-of-week"),
])
@pytest.mark.parametrize("path", [MONITORS, WINDOWS])
def test_a_malformed_crontab_is_a_400_naming_its_field(alice_api, cron, label, path):
    body = ({"name": "Example", "url": "https://example.com/health", "interval": None, "cron": cron}
            if path == MONITORS else {"cron": cron, "duration_seconds": 3600})

    response = alice_api.post(path, body, format="json")

    assert response.status_code == 400, response.content
    errors = field_errors(response)
    assert list(errors) == ["cron"]
    assert errors["cron"][0].startswith(f"{label} field: ")
