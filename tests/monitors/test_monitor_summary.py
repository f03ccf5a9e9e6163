"""The lean monitor list (/monitors/summary/): plain fields by id, keyset cursors that walk every monitor once
while monitors come and go, a bounded number of queries, and a 404 for a cursor that is not one of ours."""

import base64
from itertools import count

import pytest

from lookout.monitors import services
from lookout.monitors.selectors import SUMMARY_FIELDS
from lookout.monitors.spec import MonitorSpec
from support.queries import assert_queries_do_not_grow

pytestmark = pytest.mark.django_db

SUMMARY = "/api/v1/monitors/summary/"
serial = count()


def create(owner, n: int = 1) -> list:
    return [services.monitor_create(owner=owner, spec=MonitorSpec(name=f"m{next(serial)}", url="https://s.example/",
                                                                  interval=60, headers={"X": "1"}))
            for _ in range(n)]


def walk(client, url, *, between=None) -> list[int]:
    """Follow `next` from url, calling between() after every page; the ids seen, in order."""
    seen, pages = [], 0
    while url:
        page = client.get(url).json()
        seen += [row["id"] for row in page["results"]]
        url, pages = page["next"], pages + 1
        if between:
            between(pages)
    return seen


def test_a_summary_row_is_the_lean_fields_as_the_detail_shows_them(alice, alice_api):
    monitor, = create(alice)

    page = alice_api.get(SUMMARY).json()
    detail = alice_api.get(f"/api/v1/monitors/{monitor.pk}/").json()

    assert page["count"] == 1 and page["next"] is None and page["previous"] is None
    assert list(page["results"][0]) == list(SUMMARY_FIELDS)
    assert page["results"][0] == {name: detail[name] for name in SUMMARY_FIELDS}


def test_following_next_visits_every_monitor_once_while_monitors_are_created_and_deleted(alice, bob, alice_api):
    first = create(alice, 10)
    ids = [monitor.pk for monitor in first]
    create(bob, 2)
    added = []

    def meanwhile(pages: int) -> None:
        added.extend(monitor.pk for monitor in create(alice, 1))  # a newer id: comes later in the walk
        if pages == 2:  # one already seen, one not yet (it must not appear)
            for monitor in (first[0], first[-1]):
                services.monitor_delete(monitor=monitor)

    seen = walk(alice_api, f"{SUMMARY}?page_size=3", between=meanwhile)

    assert len(seen) == len(set(seen)), "a monitor came twice"
    assert seen == ids[:-1] + added[:len(seen) - len(ids) + 1]  # no gap: every new one until the walk ended
    assert len(added) > len(seen) - len(ids) + 1  # the last page's own addition came after it


def test_previous_from_the_last_page_comes_back_the_same_way(alice, alice_api):
    ids = [m.pk for m in create(alice, 7)]
    url, pages = f"{SUMMARY}?page_size=3", []
    while url:
        page = alice_api.get(url).json()
        pages.append([row["id"] for row in page["results"]])
        url, previous = page["next"], page["previous"]
    back = []
    while previous:
        page = alice_api.get(previous).json()
        back.insert(0, [row["id"] for row in page["results"]])
        previous = page["previous"]

    assert pages == [ids[0:3], ids[3:6], ids[6:7]]
    assert back == pages[:-1]


def test_the_summary_does_not_query_per_monitor(alice, alice_api):
    assert_queries_do_not_grow(alice_api, SUMMARY, lambda rows: create(alice, rows))
    create(alice, 60)
    second = alice_api.get(SUMMARY).json()["next"]
    assert_queries_do_not_grow(alice_api, second, lambda rows: create(alice, rows))


def test_another_owners_monitors_are_not_in_the_summary(alice, bob_api):
    create(alice, 2)

    assert bob_api.get(SUMMARY).json() == {"count": 0, "next": None, "previous": None, "results": []}


def _token(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


@pytest.mark.parametrize("cursor", ["garbage!", _token("id=x&b=0"), _token("id=5"), _token("id=5&b=2"),
                                    _token("at=2026-01-01T00:00:00%2B00:00&id=5&b=0"), _token("id=-3&b=0"),
                                    _token("id=" + "9" * 40 + "&b=0"), "%%%"])
def test_a_cursor_that_is_not_one_of_ours_is_a_404(alice, alice_api, cursor):
    create(alice)

    response = alice_api.get(SUMMARY, {"cursor": cursor})

    assert response.status_code == 404, response.content
    assert response.json()["detail"] == "Invalid cursor."
