"""The monitors' list endpoints take as many queries for many rows as for a few (no N+1)."""

from datetime import timedelta
from itertools import count

import pytest
from django.utils import timezone

from lookout.alerting.services import ChannelSpec, channel_create
from lookout.monitors import services
from lookout.monitors.models import EventKind, MonitorEvent, ProbeResult
from lookout.monitors.spec import MonitorSpec
from support.queries import assert_queries_do_not_grow

pytestmark = pytest.mark.django_db

serial = count()


def test_the_monitor_list_does_not_query_per_monitor(alice, alice_api):
    channels = [channel_create(owner=alice, spec=ChannelSpec(name=f"c{n}", kind="email", address=f"c{n}@example.com"))
                for n in range(2)]

    def add(rows: int) -> None:
        for _ in range(rows):
            services.monitor_create(owner=alice, spec=MonitorSpec(
                name=f"m{next(serial)}", url="https://shop.example/", interval=60,
                channels=[channel.pk for channel in channels], headers={"X-Plain": "1"}, secret_headers={"X-Key": "k"}))

    assert_queries_do_not_grow(alice_api, "/api/v1/monitors/", add)


@pytest.fixture
def shop(alice):
    return services.monitor_create(owner=alice, spec=MonitorSpec(name="shop", url="https://shop.example/", interval=60))


def results_adder(monitor):
    def add(rows: int) -> None:
        now = timezone.now()
        ProbeResult.objects.bulk_create([ProbeResult(monitor=monitor, checked_at=now - timedelta(seconds=next(serial)),
                                                     success=True, response_time_ms=5.0) for _ in range(rows)])
    return add


@pytest.mark.parametrize("params", [{}, {"monitor": "shop"}, {"monitor": "shop", "success": "true"}])
def test_the_result_lists_do_not_query_per_result(alice_api, shop, params):
    params = {key: str(shop.pk) if value == "shop" else value for key, value in params.items()}
    assert_queries_do_not_grow(alice_api, "/api/v1/results/", results_adder(shop), params=params)


def test_a_later_result_page_does_not_query_per_result_either(alice_api, shop):
    add = results_adder(shop)
    add(60)  # the first page (50) is full: the measured page is the one its `next` link points to
    second = alice_api.get("/api/v1/results/").json()["next"]
    assert_queries_do_not_grow(alice_api, second, lambda rows: add(rows))


def test_the_event_list_does_not_query_per_event(alice_api, shop):
    def add(rows: int) -> None:
        for _ in range(rows):
            MonitorEvent.objects.create(monitor=shop, kind=EventKind.TLS_EXPIRING, key=f"k{next(serial)}",
                                        data={"days_left": 3})

    assert_queries_do_not_grow(alice_api, "/api/v1/events/", add)
