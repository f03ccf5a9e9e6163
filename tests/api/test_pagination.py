"""List paging parameters (lookout.api.pagination): a malformed one is a 400 naming it, not a silent default."""

import pytest

from lookout.monitors import services
from lookout.monitors.spec import MonitorSpec
from support.api_errors import field_errors

pytestmark = pytest.mark.django_db

PAGE_NUMBERED = ["/api/v1/monitors/", "/api/v1/channels/", "/api/v1/incidents/", "/api/v1/notifications/",
                 "/api/v1/maintenance-windows/", "/api/v1/events/"]
KEYSET = ["/api/v1/results/"]


@pytest.fixture
def monitors(alice):
    return [services.monitor_create(owner=alice, spec=MonitorSpec(name=f"m{n}", url=f"https://{n}.example/",
                                                                  interval=60)) for n in range(3)]


@pytest.mark.parametrize("path", PAGE_NUMBERED + KEYSET)
@pytest.mark.parametrize("value", ["-1", "0", "00", "abc", "", "1.5", " 2", "+2", "\u0662", "1e3"])
def test_a_malformed_page_size_is_a_400_naming_the_parameter(alice_api, path, value):
    response = alice_api.get(path, {"page_size": value})

    assert response.status_code == 400, response.content
    assert list(field_errors(response)) == ["page_size"]
    assert response.json()["code"] == "invalid"


@pytest.mark.parametrize("value", ["abc", "0", "-1", "", "1.5", "00"])
def test_a_malformed_page_number_is_a_400_naming_the_parameter(alice_api, value):
    response = alice_api.get("/api/v1/monitors/", {"page": value})

    assert response.status_code == 400, response.content
    assert list(field_errors(response)) == ["page"]


def test_a_page_size_above_the_maximum_is_the_maximum(alice_api, monitors):
    for value in ("501", "9" * 30):
        response = alice_api.get("/api/v1/monitors/", {"page_size": value})

        assert response.status_code == 200
        assert len(response.json()["results"]) == 3


def test_a_valid_page_size_and_page_number_page_the_list(alice_api, monitors):
    first = alice_api.get("/api/v1/monitors/", {"page_size": "2"}).json()
    second = alice_api.get("/api/v1/monitors/", {"page_size": "02", "page": "2"}).json()
    last = alice_api.get("/api/v1/monitors/", {"page_size": "2", "page": "last"}).json()

    assert (len(first["results"]), len(second["results"])) == (2, 1)
    assert last["results"] == second["results"]


def test_a_page_past_the_last_stays_a_404(alice_api, monitors):
    for value in ("3", "9" * 30):
        assert alice_api.get("/api/v1/monitors/", {"page_size": "2", "page": value}).status_code == 404


def test_a_bad_result_cursor_stays_a_404(alice_api):
    response = alice_api.get("/api/v1/results/", {"cursor": "not-a-cursor"})

    assert response.status_code == 404
    assert response.json()["detail"] == "Invalid cursor."
