"""/api/v1/regions/: each region's workers seen in the last minute, probes in flight, failure share, suspect."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from lookout.alerting.models import DegradedEpisode
from lookout.monitors.models import ProbeResult, RegionWorker
from support.results import new_monitor

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def regions(settings):
    settings.LOOKOUT_REGIONS = ["home", "eu", "us"]
    settings.LOOKOUT_HOME_REGION = "home"
    settings.LOOKOUT_REGION_WINDOW_SECONDS = 300


def results(monitor, *, region: str, total: int, failed: int, ago: float = 10.0) -> None:
    at = timezone.now() - timedelta(seconds=ago)
    ProbeResult.objects.bulk_create([
        ProbeResult(monitor=monitor, checked_at=at, success=index >= failed, response_time_ms=20.0,
                    task_id=f"t-{uuid.uuid4()}", region=region) for index in range(total)])


def test_it_lists_every_region_with_its_recent_workers_and_failure_share(alice, alice_api,
                                                                        django_assert_max_num_queries):
    monitor = new_monitor(alice, regions=["home", "eu"])
    now = timezone.now()
    RegionWorker.objects.create(region="home", worker="celery@a", last_seen=now - timedelta(seconds=5), in_flight=3,
                                version="1.2.0")
    RegionWorker.objects.create(region="home", worker="celery@b", last_seen=now - timedelta(seconds=30), in_flight=1)
    RegionWorker.objects.create(region="eu", worker="agent@gone", last_seen=now - timedelta(seconds=61))
    results(monitor, region="", total=3, failed=1)  # stored before regions existed: home's
    results(monitor, region="home", total=1, failed=0)
    results(monitor, region="eu", total=4, failed=4)
    results(monitor, region="eu", total=5, failed=0, ago=301)  # outside the window
    DegradedEpisode.objects.create(region="eu", started_at=now, failing=4, probed=4)

    with django_assert_max_num_queries(6):  # authentication, then the three of the selector
        response = alice_api.get("/api/v1/regions/")

    assert response.status_code == 200
    home, eu, us = response.json()
    assert (home["name"], home["home"], home["queue"], home["workers"], home["in_flight"]) == (
        "home", True, "probes", 2, 4)
    assert [(w["worker"], w["in_flight"], w["version"]) for w in home["workers_seen"]] == [
        ("celery@a", 3, "1.2.0"), ("celery@b", 1, "")]
    assert (home["results"], home["failures"], home["failure_percent"], home["suspect"], home["suspect_since"]) == (
        4, 1, 25.0, False, None)
    assert (eu["queue"], eu["workers"], eu["workers_seen"], eu["in_flight"]) == ("probes.eu", 0, [], 0)
    assert (eu["results"], eu["failures"], eu["failure_percent"], eu["suspect"]) == (4, 4, 100.0, True)
    assert eu["suspect_since"] is not None
    assert (us["results"], us["failure_percent"], us["suspect"], us["window_seconds"]) == (0, None, False, 300)


def test_it_is_for_authenticated_users_only(client):
    assert client.get("/api/v1/regions/").status_code == 401
