"""Results are paged by a keyset cursor: following `next` visits every result once, newest first, at any depth."""

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.utils import timezone

from lookout.monitors import services
from lookout.monitors.models import ProbeResult
from lookout.monitors.spec import MonitorSpec

pytestmark = pytest.mark.django_db

RESULTS = "/api/v1/results/"
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def shop(alice):
    return services.monitor_create(owner=alice, spec=MonitorSpec(name="shop", url="https://shop.example/", interval=60))


@pytest.fixture
def api(alice_api):
    return alice_api


def results(monitor, times: list[datetime], *, success: bool = True) -> list[ProbeResult]:
    return ProbeResult.objects.bulk_create([ProbeResult(monitor=monitor, checked_at=at, success=success,
                                                        response_time_ms=5.0) for at in times])


def newest_first(rows: list[ProbeResult]) -> list[int]:
    return [row.pk for row in sorted(rows, key=lambda row: (row.checked_at, row.pk), reverse=True)]


def walk(api, url: str, params: dict | None = None, *, link: str = "next") -> list[list[int]]:
    """The ids of each page, following `link` until it is null."""
    pages, response = [], api.get(url, params or {})
    while True:
        assert response.status_code == 200, response.content
        body = response.json()
        assert set(body) == {"next", "previous", "results"}  # no count: nothing counts millions of rows
        pages.append([row["id"] for row in body["results"]])
        if body[link] is None:
            return pages
        response = api.get(body[link])


def test_following_next_visits_every_result_once_newest_first_even_with_equal_times(api, shop):
    # Bursts of results at the same instant: the cursor must order them by id, not skip or repeat them.
    rows = results(shop, [T0 + timedelta(minutes=minute) for minute in range(10) for _ in range(3)])
    rows += results(shop, [T0 + timedelta(minutes=5)] * 4, success=False)

    pages = walk(api, RESULTS, {"page_size": 4})

    assert [len(page) for page in pages] == [4] * 8 + [2]
    assert [pk for page in pages for pk in page] == newest_first(rows)


def test_following_previous_from_the_last_page_comes_back_the_same_way(api, shop):
    results(shop, [T0 + timedelta(minutes=minute // 2) for minute in range(11)])
    forward = walk(api, RESULTS, {"page_size": 3})

    last_page = api.get(RESULTS, {"page_size": 3})
    while last_page.json()["next"]:
        last_page = api.get(last_page.json()["next"])
    backward = walk(api, last_page.json()["previous"], link="previous")

    assert [pk for page in reversed(backward) for pk in page] == [pk for page in forward[:-1] for pk in page]
    assert api.get(RESULTS, {"page_size": 3}).json()["previous"] is None


def test_results_recorded_while_paging_neither_repeat_nor_shift_the_older_pages(api, shop):
    rows = results(shop, [T0 + timedelta(minutes=minute) for minute in range(9)])
    first = api.get(RESULTS, {"page_size": 3}).json()

    results(shop, [T0 + timedelta(minutes=60 + minute) for minute in range(5)])  # newer ones arrive meanwhile
    rest = walk(api, first["next"])

    seen = [row["id"] for row in first["results"]] + [pk for page in rest for pk in page]
    assert seen == newest_first(rows)


def test_next_links_keep_the_filters_and_the_page_size(api, shop, alice):
    other = services.monitor_create(owner=alice, spec=MonitorSpec(name="other", url="https://other.example/",
                                                                  interval=60))
    mine = results(shop, [T0 + timedelta(minutes=minute) for minute in range(5)])
    results(other, [T0 + timedelta(minutes=minute) for minute in range(5)])
    failures = results(shop, [T0 + timedelta(minutes=minute, seconds=30) for minute in range(5)], success=False)

    first = api.get(RESULTS, {"monitor": shop.pk, "success": "true", "page_size": 2}).json()
    query = parse_qs(urlsplit(first["next"]).query)

    assert (query["monitor"], query["success"], query["page_size"]) == ([str(shop.pk)], ["true"], ["2"])
    pages = walk(api, RESULTS, {"monitor": shop.pk, "success": "true", "page_size": 2})
    assert [pk for page in pages for pk in page] == newest_first(mine)
    assert not {pk for page in pages for pk in page} & {row.pk for row in failures}


def test_a_page_past_the_last_result_is_empty_and_points_back_to_the_first(api, shop):
    rows = results(shop, [T0, T0 + timedelta(minutes=1)])
    first = api.get(RESULTS, {"page_size": 1}).json()
    second = api.get(first["next"]).json()
    assert second["results"][0]["id"] == rows[0].pk and second["next"] is None

    ProbeResult.objects.filter(pk=rows[0].pk).delete()  # the row a cursor points past may go (retention)
    again = api.get(first["next"]).json()
    assert again["results"] == [] and again["next"] is None and again["previous"] is not None


@pytest.mark.parametrize("cursor", ["garbage", "YXQ9eCZpZD0x", "YXQ9MjAyNi0xMS0wMVQxMjowMDowMCZpZD0xJmI9MA"])
def test_a_cursor_that_is_not_one_of_ours_is_a_404(api, shop, cursor):
    # The last one is well-formed but for a time without a zone.
    response = api.get(RESULTS, {"cursor": cursor})
    assert response.status_code == 404
    assert response.json() == {"detail": "Invalid cursor.", "code": "not_found"}


def test_pages_looked_for_a_day_then_a_week_around_the_cursor_still_visit_every_result_once(api, shop):
    # Rows an hour ahead (a clock off), today, days and weeks ago: each window tried (a day, a week, everything)
    # holds too few rows for some pages, and those pages must come from the next window, in order.
    now = timezone.now()
    ages = [timedelta(hours=-1), timedelta(0), timedelta(minutes=5), timedelta(hours=23), timedelta(days=2),
            timedelta(days=3), timedelta(days=7, hours=23), timedelta(days=9), timedelta(days=20),
            timedelta(days=20), timedelta(days=45)]
    rows = results(shop, [now - age for age in ages])

    for size in (1, 2, 3, 5):
        forward = walk(api, RESULTS, {"page_size": size})
        assert [pk for page in forward for pk in page] == newest_first(rows), size
        last = api.get(RESULTS, {"page_size": size})
        while last.json()["next"]:
            last = api.get(last.json()["next"])
        if last.json()["previous"]:
            backward = walk(api, last.json()["previous"], link="previous")
            assert [pk for page in reversed(backward) for pk in page] == [pk for page in forward[:-1] for pk in page]
