"""A monitor's detail shows each of its regions' latest result; the list shows them without a query per monitor."""

from datetime import timedelta
from itertools import count

import pytest
from django.utils import timezone

from lookout.monitors import services
from lookout.monitors.models import MonitorRegion
from lookout.monitors.spec import MonitorSpec
from support.queries import assert_queries_do_not_grow

pytestmark = pytest.mark.django_db

serial = count()


@pytest.fixture(autouse=True)
def regions(settings):
    settings.LOOKOUT_REGIONS = ["home", "eu", "us"]
    settings.LOOKOUT_HOME_REGION = "home"


def monitor(owner, **fields):
    return services.monitor_create(owner=owner, spec=MonitorSpec(**{
        "name": f"m{next(serial)}", "url": "https://shop.example/", "interval": 60, "timeout": 10, **fields}))


def test_the_detail_shows_each_region_up_down_or_unknown(alice, alice_api):
    shop = monitor(alice, regions=["eu", "home", "us"])
    now = timezone.now()
    MonitorRegion.objects.create(monitor=shop, region="home", status="up", checked_at=now - timedelta(seconds=20),
                                 response_time_ms=12.5)
    MonitorRegion.objects.create(monitor=shop, region="eu", status="down", checked_at=now - timedelta(seconds=100),
                                 response_time_ms=10000.0, error="timed out")
    # Older than 2 × interval + timeout (130 s): what it says is no longer known.
    MonitorRegion.objects.create(monitor=shop, region="us", status="up", checked_at=now - timedelta(seconds=131),
                                 response_time_ms=30.0)

    states = alice_api.get(f"/api/v1/monitors/{shop.pk}/").json()["regions_status"]

    assert [(state["region"], state["status"], state["response_time_ms"], state["error"]) for state in states] == [
        ("eu", "down", 10000.0, "timed out"), ("home", "up", 12.5, ""), ("us", "unknown", 30.0, "")]
    assert all(state["checked_at"] for state in states)


def test_a_region_without_a_result_is_unknown_and_a_monitor_without_regions_has_none(alice, alice_api):
    shop = monitor(alice, regions=["home", "eu"])
    plain = monitor(alice)

    assert alice_api.get(f"/api/v1/monitors/{shop.pk}/").json()["regions_status"] == [
        {"region": "home", "status": "unknown", "checked_at": None, "response_time_ms": None, "error": ""},
        {"region": "eu", "status": "unknown", "checked_at": None, "response_time_ms": None, "error": ""}]
    assert alice_api.get(f"/api/v1/monitors/{plain.pk}/").json()["regions_status"] == []


def test_the_list_does_not_query_per_monitor_for_its_regions(alice, alice_api):
    def add(rows: int) -> None:
        for _ in range(rows):
            shop = monitor(alice, regions=["home", "eu", "us"])
            MonitorRegion.objects.bulk_create([MonitorRegion(monitor=shop, region=region, status="up",
                                                             checked_at=timezone.now(), response_time_ms=5.0)
                                               for region in ("home", "eu", "us")])

    assert_queries_do_not_grow(alice_api, "/api/v1/monitors/", add)
    assert {len(item["regions_status"]) for item in alice_api.get("/api/v1/monitors/").json()["results"]} == {3}


def test_results_refuse_an_unknown_region(alice_api):
    response = alice_api.get("/api/v1/results/", {"region": "mars"})

    assert response.status_code == 400 and "region" in response.json()
