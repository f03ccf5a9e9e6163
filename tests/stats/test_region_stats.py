"""Stats of one region: rollups per region, the unfiltered answer their sum, an unknown region a 400."""

from datetime import UTC, datetime, timedelta

import pytest

from lookout.monitors import services
from lookout.monitors.models import ProbeResult
from lookout.monitors.spec import MonitorSpec
from lookout.stats.models import ResultRollup
from lookout.stats.rollups import rollup_run
from lookout.stats.selectors import monitor_stats

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 10, 12, 30, tzinfo=UTC)


@pytest.fixture(autouse=True)
def regions(settings):
    settings.LOOKOUT_REGIONS = ["home", "eu", "us"]
    settings.LOOKOUT_HOME_REGION = "home"


@pytest.fixture
def shop(alice):
    monitor = services.monitor_create(owner=alice, spec=MonitorSpec(
        name="shop", url="https://shop.example/", interval=60, regions=["home", "eu", "us"]))
    rows = []
    for minute in range(6 * 60):  # six hours: rolled-up hours and raw edges
        at = NOW - timedelta(minutes=minute)
        rows += [ProbeResult(monitor=monitor, checked_at=at, success=True, response_time_ms=20.0, region=""),
                 ProbeResult(monitor=monitor, checked_at=at, success=minute % 2 == 0, response_time_ms=200.0,
                             region="eu"),
                 ProbeResult(monitor=monitor, checked_at=at, success=True, response_time_ms=50.0, region="us")]
    ProbeResult.objects.bulk_create(rows)
    rollup_run(now=NOW)
    return monitor


def test_rollups_are_per_region_and_the_unfiltered_stats_sum_them(shop):
    assert set(ResultRollup.objects.values_list("region", flat=True)) == {"", "eu", "us"}

    every = monitor_stats(monitor=shop, window="24h", now=NOW)
    home = monitor_stats(monitor=shop, window="24h", now=NOW, region="home")
    eu = monitor_stats(monitor=shop, window="24h", now=NOW, region="eu")
    us = monitor_stats(monitor=shop, window="24h", now=NOW, region="us")

    assert (home["checks"], home["failures"], eu["checks"], eu["failures"]) == (360, 0, 360, 180)
    assert every["checks"] == home["checks"] + eu["checks"] + us["checks"] == 1080
    assert every["failures"] == 180 and eu["uptime_percent"] == 50.0
    assert home["response_time_ms"]["avg"] == 20.0 and us["response_time_ms"]["avg"] == 50.0


def test_the_endpoint_answers_for_one_region_and_refuses_an_unknown_one(shop, alice_api):
    url = f"/api/v1/monitors/{shop.pk}/stats/"

    eu = alice_api.get(url, {"window": "24h", "region": "eu"})
    bad = alice_api.get(url, {"region": "mars"})

    assert eu.status_code == 200 and eu.json()["window"] == "24h"
    assert bad.status_code == 400 and "region" in bad.json()
