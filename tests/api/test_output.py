"""Serializers rendering through read fields built once render exactly what DRF's own per-request fields do."""

from datetime import timedelta

import pytest
from django.test import RequestFactory
from django.utils import timezone
from rest_framework import serializers
from rest_framework.request import Request

from lookout.alerting.services import ChannelSpec, channel_create
from lookout.monitors import selectors, services
from lookout.monitors.api.serializers import MonitorSerializer, ProbeResultSerializer
from lookout.monitors.models import Monitor, MonitorRegion, ProbeResult
from lookout.monitors.spec import MonitorSpec

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def regions(settings):
    settings.LOOKOUT_REGIONS = ["home", "eu"]
    settings.LOOKOUT_HOME_REGION = "home"


@pytest.fixture
def varied(alice):
    """Monitors with every kind of value the representation has: null and set, nested, secret, related."""
    channels = [channel_create(owner=alice, spec=ChannelSpec(name=f"c{n}", kind="email", address=f"c{n}@example.com"))
                for n in range(2)]
    specs = [
        MonitorSpec(name="plain", url="https://shop.example/", interval=60),
        MonitorSpec(name="full", url="https://api.example/x?y=1", interval=120, method="POST", body="{}", timeout=5,
                    expected_status=[200, 201], keyword="ok", headers={"X-A": "1"}, secret_headers={"X-Key": "k"},
                    basic_auth_username="u", basic_auth_password="p", channels=[c.pk for c in reversed(channels)],
                    regions=["eu", "home"], metrics=["status", "phases"], conditions=["[STATUS] == 200"]),
        MonitorSpec(name="cron", type="tcp", url="tcp://db.example:5432", cron="*/5 * * * *", timezone="Europe/Paris"),
        MonitorSpec(name="push", type="push", interval=3600, grace=60),
        MonitorSpec(name="dns", type="dns", url="dns:///example.com", interval=300, record_type="A",
                    expected_answer="1.2.3.4"),
    ]
    made = [services.monitor_create(owner=alice, spec=spec) for spec in specs]
    now = timezone.now()
    Monitor.objects.filter(pk=made[1].pk).update(status="down", last_checked_at=now, last_response_time_ms=12.5,
                                                  last_phases={"dns": 1.0, "connect": 2.5},
                                                  tls_not_after=now + timedelta(days=30))
    MonitorRegion.objects.create(monitor=made[1], region="eu", status="down", checked_at=now, error="timed out",
                                 response_time_ms=None)
    return [Monitor.objects.get(pk=monitor.pk) for monitor in made]


def request_for(user) -> Request:
    request = Request(RequestFactory().get("/api/v1/monitors/"))
    request.user = user
    return request


def test_a_monitor_renders_as_drfs_own_fields_render_it(alice, varied):
    context = {"request": request_for(alice)}
    for monitor in varied:
        serializer = MonitorSerializer(monitor, context=context)
        expected = serializers.ModelSerializer.to_representation(serializer, Monitor.objects.get(pk=monitor.pk))
        assert serializer.data == expected
        assert set(expected) == {name for name, field in serializer.fields.items() if not field.write_only}


def test_a_page_of_monitors_with_their_relations_loaded_at_once_renders_as_each_one_alone(alice, varied):
    context = {"request": request_for(alice)}
    page = list(selectors.monitor_list(owner=alice))
    selectors.monitor_relations_load(page)

    alone = [MonitorSerializer(Monitor.objects.get(pk=monitor.pk), context=context).data for monitor in varied]
    assert MonitorSerializer(page, many=True, context=context).data == alone
    assert alone[1]["channels"] == sorted(alone[1]["channels"]) and len(alone[1]["channels"]) == 2
    assert [state["status"] for state in alone[1]["regions_status"]] == ["down", "unknown"]


def test_the_list_endpoint_shows_each_monitor_as_its_detail_does(alice_api, varied):
    listed = alice_api.get("/api/v1/monitors/").json()["results"]
    assert listed == [alice_api.get(f"/api/v1/monitors/{monitor.pk}/").json() for monitor in varied]


def test_a_result_renders_as_drfs_own_fields_render_it(varied):
    now = timezone.now()
    rows = [ProbeResult.objects.create(monitor=varied[0], checked_at=now, success=True, status_code=200,
                                       response_time_ms=3.5, phases={"dns": 0.5}, tls={"days_left": 3}),
            ProbeResult.objects.create(monitor=varied[1], checked_at=now, success=False, error="boom",
                                       response_time_ms=0.0, region="eu", failed_condition="[STATUS] == 200")]
    for row in rows:
        serializer = ProbeResultSerializer(row)
        assert serializer.data == serializers.ModelSerializer.to_representation(serializer, row)
