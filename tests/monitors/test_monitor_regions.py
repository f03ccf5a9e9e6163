"""A monitor's regions and confirm through the API: unknown names are a 400 that changes nothing, and what beat sends
to other regions is kept in the monitor's PeriodicTask, with its secrets sealed to each region's key."""

import json

import pytest
from cryptography.fernet import Fernet
from django_celery_beat.models import PeriodicTask

from lookout.core.regions import region_key
from lookout.monitors.models import Monitor
from lookout.scheduling.regional import REGIONS_KWARG
from support.api_errors import field_errors

pytestmark = pytest.mark.django_db

MONITORS = "/api/v1/monitors/"


@pytest.fixture(autouse=True)
def three_regions(settings):
    settings.LOOKOUT_REGIONS, settings.LOOKOUT_HOME_REGION = ["home", "eu-west", "us-east"], "home"


def create(client, **fields) -> dict:
    response = client.post(MONITORS, {"name": "Shop", "url": "https://shop.example/", "interval": 60, **fields},
                           format="json")
    assert response.status_code == 201, response.content
    return response.json()


def regional(monitor_id: int) -> dict | None:
    task = Monitor.objects.select_related("periodic_task").get(pk=monitor_id).periodic_task
    return json.loads(task.kwargs or "{}").get(REGIONS_KWARG)


def test_a_monitor_names_no_region_by_default_and_is_probed_from_home_alone(alice_api):
    monitor = create(alice_api)

    assert monitor["regions"] == [] and monitor["confirm"] is None
    assert regional(monitor["id"]) is None  # beat sends it as it always did


def test_unknown_regions_are_a_400_that_creates_nothing(alice_api):
    before = (Monitor.objects.count(), PeriodicTask.objects.count())

    response = alice_api.post(MONITORS, {"name": "Shop", "url": "https://shop.example/", "interval": 60,
                                         "regions": ["home", "mars"]}, format="json")

    assert response.status_code == 400
    assert "mars" in field_errors(response)["regions"][0]
    assert (Monitor.objects.count(), PeriodicTask.objects.count()) == before


@pytest.mark.parametrize("fields, field", [
    ({"regions": ["home", "home"]}, "regions"),
    ({"regions": ["home", "eu-west"], "confirm": 3}, "confirm"),
    ({"confirm": 0}, "confirm"),
    ({"regions": "home"}, "regions"),
])
def test_bad_regions_or_confirm_are_refused(alice_api, fields, field):
    response = alice_api.post(MONITORS, {"name": "Shop", "url": "https://shop.example/", "interval": 60, **fields},
                              format="json")

    assert response.status_code == 400 and field in field_errors(response), response.content


def test_other_regions_get_the_probe_and_secrets_sealed_to_their_own_key(alice_api):
    monitor = create(alice_api, regions=["home", "eu-west", "us-east"], confirm=2,
                     headers={"Accept": "text/plain"}, secret_headers={"Authorization": "Bearer s3cret"},
                     basic_auth_username="ops", basic_auth_password="hunter2")

    payload = regional(monitor["id"])
    assert payload["regions"] == ["home", "eu-west", "us-east"] and payload["monitor"] == monitor["id"]
    assert payload["spec"]["url"] == "https://shop.example/" and payload["spec"]["headers"] == {"Accept": "text/plain"}
    text = json.dumps(payload)
    assert "s3cret" not in text and "hunter2" not in text
    assert set(payload["sealed"]) == {"eu-west", "us-east"}  # the home region reads the database
    opened = json.loads(Fernet(region_key("eu-west").encode()).decrypt(payload["sealed"]["eu-west"].encode()))
    assert opened["headers"] == {"Authorization": "Bearer s3cret"} and opened["basic_auth"] == ["ops", "hunter2"]
    with pytest.raises(Exception):  # noqa: B017 (cryptography's InvalidToken): us-east cannot open eu-west's
        Fernet(region_key("us-east").encode()).decrypt(payload["sealed"]["eu-west"].encode())


def test_an_update_that_changes_nothing_leaves_the_schedule_row_alone(alice_api):
    monitor = create(alice_api, regions=["home", "eu-west"], secret_headers={"X-Key": "k"})
    before = regional(monitor["id"])

    response = alice_api.patch(f"{MONITORS}{monitor['id']}/", {"name": "Shop (renamed)"}, format="json")

    assert response.status_code == 200
    assert regional(monitor["id"]) == before  # resealing would reach beat as a change


def test_changing_regions_or_the_probe_rewrites_what_beat_sends(alice_api):
    monitor = create(alice_api, regions=["home", "eu-west"])

    alice_api.patch(f"{MONITORS}{monitor['id']}/", {"regions": ["eu-west", "us-east"], "url": "https://shop.example/b"},
                    format="json")

    payload = regional(monitor["id"])
    assert payload["regions"] == ["eu-west", "us-east"] and payload["spec"]["url"] == "https://shop.example/b"
    alice_api.patch(f"{MONITORS}{monitor['id']}/", {"regions": []}, format="json")
    assert regional(monitor["id"]) is None
