"""The incidents API: owner-scoped, filtered by monitor and open/closed, with durations."""

from datetime import timedelta

import pytest

from lookout.alerting.models import Incident
from support.alerting import T0, monitor_for, run

pytestmark = pytest.mark.django_db

INCIDENTS = "/api/v1/incidents/"
MINUTE = timedelta(minutes=1)


def test_incidents_are_listed_newest_first_filtered_by_monitor_and_open(alice_api, alice, bob_api):
    first = monitor_for(alice, name="first", failure_threshold=1)
    second = monitor_for(alice, name="second", failure_threshold=1)
    run(first, "DDU")  # closed, 2 minutes
    run(second, "UD", start=T0 + 10 * MINUTE)  # open

    listed = alice_api.get(INCIDENTS).json()["results"]
    assert [(i["monitor"], i["open"]) for i in listed] == [(second.pk, True), (first.pk, False)]
    closed = listed[1]
    assert (closed["duration_seconds"], closed["cause"], closed["alerts_deferred"]) == (120.0, "HTTP 503", False)
    assert alice_api.get(INCIDENTS, {"open": "true"}).json()["count"] == 1
    assert alice_api.get(INCIDENTS, {"open": "false"}).json()["results"][0]["monitor"] == first.pk
    assert alice_api.get(INCIDENTS, {"monitor": first.pk, "open": "true"}).json()["count"] == 0
    assert alice_api.get(f"{INCIDENTS}{closed['id']}/").json()["ended_at"] is not None

    assert bob_api.get(INCIDENTS).json()["count"] == 0
    assert bob_api.get(f"{INCIDENTS}{closed['id']}/").status_code == 404


@pytest.mark.parametrize("params", [{"monitor": "abc"}, {"open": "maybe"}, {"monitor": "0"}])
def test_bad_filters_are_a_400(alice_api, params):
    assert alice_api.get(INCIDENTS, params).status_code == 400


def test_anonymous_requests_are_401(client):
    for path in (INCIDENTS, "/api/v1/channels/", "/api/v1/notifications/", "/api/v1/maintenance-windows/",
                 "/api/v1/monitors/1/stats/", "/api/v1/periodic-tasks/"):
        assert client.get(path).status_code == 401, path


def test_an_incident_names_the_regions_that_confirmed_it(alice_api, alice):
    monitor = monitor_for(alice, name="plain", failure_threshold=1)
    run(monitor, "D")
    Incident.objects.filter(monitor=monitor).update(regions=["eu", "us"], regions_total=3)

    [incident] = alice_api.get(INCIDENTS).json()["results"]

    assert (incident["regions"], incident["regions_total"]) == (["eu", "us"], 3)
