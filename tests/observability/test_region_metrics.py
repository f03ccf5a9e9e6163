"""Per-region series: each region's up for a monitor of several regions, and the fleet's suspect and worker gauges."""

from datetime import timedelta

import pytest
from django.utils import timezone

from lookout.alerting.models import DegradedEpisode
from lookout.monitors import services
from lookout.monitors.models import MonitorRegion, MonitorStatus, RegionWorker
from lookout.monitors.spec import MonitorSpec
from lookout.observability.collector import MonitorCollector
from lookout.observability.metrics import RegionCollector
from lookout.process_signals import _region_gauges


@pytest.fixture(autouse=True)
def regions(settings):
    settings.LOOKOUT_REGIONS = ["home", "eu", "us"]
    settings.LOOKOUT_HOME_REGION = "home"


def by_name(collector) -> dict[str, dict[tuple, float]]:
    return {family.name: {tuple(sorted(s.labels.items())): s.value for s in family.samples}
            for family in collector.collect()}


# transaction=True: the collector closes its connection after each read, as its scrape threads must.
@pytest.mark.django_db(transaction=True)
def test_a_monitor_of_three_regions_has_an_up_series_per_known_region(alice, settings):
    settings.LOOKOUT_MONITOR_METRICS_DETAIL = ["regions", "status"]  # opt-in details
    shop = services.monitor_create(owner=alice, spec=MonitorSpec(
        name="shop", url="https://shop.example/", interval=60, timeout=10, regions=["home", "eu", "us"]))
    plain = services.monitor_create(owner=alice, spec=MonitorSpec(name="plain", url="https://example.org/",
                                                                  interval=60))
    now = timezone.now()
    MonitorRegion.objects.bulk_create([
        MonitorRegion(monitor=shop, region="home", status="up", checked_at=now),
        MonitorRegion(monitor=shop, region="eu", status="down", checked_at=now),
        MonitorRegion(monitor=shop, region="us", status="up", checked_at=now - timedelta(seconds=200)),  # stale
        MonitorRegion(monitor=plain, region="home", status="up", checked_at=now),  # names no regions: none
    ])

    series = by_name(MonitorCollector(cache_seconds=0))

    shop_id = str(shop.pk)
    assert series["lookout_monitor_region_up"] == {(("monitor_id", shop_id), ("region", "home")): 1.0,
                                                   (("monitor_id", shop_id), ("region", "eu")): 0.0}
    assert series["lookout_monitor_status"][(("monitor_id", shop_id), ("status", MonitorStatus.DEGRADED))] == 0.0
    text = MonitorCollector(cache_seconds=0).exposition().decode()
    assert f'lookout_monitor_region_up{{monitor_id="{shop_id}",region="eu"}} 0.0' in text


@pytest.mark.django_db(transaction=True)
def test_the_fleet_gauges_say_which_region_is_suspect_and_how_many_workers_each_has():
    now = timezone.now()
    RegionWorker.objects.create(region="home", worker="celery@a", last_seen=now)
    RegionWorker.objects.create(region="home", worker="celery@b", last_seen=now - timedelta(seconds=10))
    RegionWorker.objects.create(region="eu", worker="agent@old", last_seen=now - timedelta(minutes=5))
    DegradedEpisode.objects.create(region="eu", started_at=now, failing=30, probed=30)
    DegradedEpisode.objects.create(started_at=now, failing=3, probed=5)  # the guard's: no region

    series = by_name(RegionCollector(_region_gauges, cache_seconds=0))

    assert series["lookout_region_suspect"] == {(("region", "home"),): 0.0, (("region", "eu"),): 1.0,
                                                (("region", "us"),): 0.0}
    assert series["lookout_region_workers"] == {(("region", "home"),): 2.0, (("region", "eu"),): 0.0,
                                                (("region", "us"),): 0.0}
