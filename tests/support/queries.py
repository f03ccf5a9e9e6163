"""Query counts of list endpoints: a page of many rows must cost the same queries as a page of a few."""

from collections.abc import Callable
from typing import Any

from django.db import connection
from django.test.utils import CaptureQueriesContext


def queries_of(client: Any, url: str, params: dict[str, str] | None = None) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url, params or {})
    assert response.status_code == 200, response.content
    return [query["sql"] for query in captured.captured_queries]


def assert_queries_do_not_grow(client: Any, url: str, add_rows: Callable[[int], None], *, expected_rows: Callable[
        [Any], int] | None = None, params: dict[str, str] | None = None) -> int:
    """Add 2 rows, then 6 more; both pages (all rows on one page) must take the same queries. Returns the count."""
    add_rows(2)
    queries_of(client, url, params)  # warm-up: the throttle's cache row, content types, ...
    few = queries_of(client, url, params)
    add_rows(6)
    many = queries_of(client, url, params)
    page = client.get(url, params or {}).json()
    assert len(page["results"]) >= 8, page  # the added rows are on the page measured
    assert len(many) == len(few), "\n".join(["with few rows:", *few, "with more rows:", *many])
    return len(many)
