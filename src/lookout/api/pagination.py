"""Pagination of list endpoints: page numbers for short lists, keyset cursors for probe results and for walking
many monitors (their `count` kept by the services, never counted)."""

import base64
import binascii
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any
from urllib.parse import parse_qsl, urlencode

from django.core.paginator import Page
from django.core.paginator import Paginator as DjangoPaginator
from django.db.models import Model, Q, QuerySet
from django.utils import timezone
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import BasePagination, PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param, replace_query_param


class DeferredJoinPaginator(DjangoPaginator):
    """A page's ids first, then its rows: OFFSET then skips index entries (an index-only scan), not whole rows.

    Measured at 100k monitors of one owner: the last page took 109 ms of OFFSET over rows, 23 ms over ids.
    """

    def page(self, number: int | str) -> Page[Model]:
        if not isinstance(self.object_list, QuerySet):
            return super().page(number)
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        top = bottom + self.per_page
        if top + self.orphans >= self.count:
            top = self.count
        ids = list(self.object_list.values_list("pk", flat=True)[bottom:top])
        rows = {row.pk: row for row in self.object_list.filter(pk__in=ids).order_by()}
        return Page([rows[pk] for pk in ids if pk in rows], number, self)


class KnownCountPaginator(DeferredJoinPaginator):
    """A page-number paginator whose total comes from `count_of()` (e.g. a count kept by the services), not
    from count(*) over the list: at a million rows that is an index-only scan of a million entries per page."""

    def __init__(self, object_list: Any, per_page: int, *, count_of: Callable[[], int]) -> None:
        super().__init__(object_list, per_page)
        self.count_of = count_of

    @cached_property
    def count(self) -> int:
        return self.count_of()


def _view_count(view: Any) -> Callable[[], int] | None:
    """The view's `paginated_count` (the list's total without counting it), if it has one."""
    return getattr(view, "paginated_count", None)


_WHOLE_NUMBER = re.compile(r"[0-9]+", re.ASCII)


def page_size_parse(request: Request, *, param: str, default: int, maximum: int) -> int:
    """The `param` query parameter: absent is the default, above `maximum` is the maximum, anything but a whole
    number of 1 or more is a 400 naming the parameter (not a silent fall back to the default)."""
    raw = request.query_params.get(param)
    if raw is None:
        return default
    if not _WHOLE_NUMBER.fullmatch(raw) or not raw.strip("0"):
        raise ValidationError({param: [f"A whole number from 1 to {maximum} is required."]})
    # Past nine digits it is above any maximum: no int() of a thousand digits.
    return maximum if len(raw) > 9 else min(int(raw), maximum)


class Pagination(PageNumberPagination):
    """Page numbers with a count: for lists of one owner's rows (monitors, channels, incidents, ...)."""

    django_paginator_class = DeferredJoinPaginator
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500

    def get_page_size(self, request: Request) -> int:
        return page_size_parse(request, param=self.page_size_query_param, default=self.page_size,
                               maximum=self.max_page_size)

    def paginate_queryset(self, queryset: Any, request: Request, view: Any = None) -> list[Any] | None:
        count_of = _view_count(view)
        if count_of is not None:
            def known(rows: Any, size: int) -> KnownCountPaginator:
                return KnownCountPaginator(rows, size, count_of=count_of)

            # Per instance: DRF builds one pagination per view instance, i.e. per request.
            self.django_paginator_class = known  # type: ignore[assignment]
        return super().paginate_queryset(queryset, request, view)

    def get_page_number(self, request: Request, paginator: "DjangoPaginator[Any]") -> int | str:
        """A malformed page number is a 400 naming the parameter; a page past the last stays DRF's 404."""
        raw = request.query_params.get(self.page_query_param)
        if raw is None:
            return 1
        if raw in self.last_page_strings:
            return paginator.num_pages
        if not _WHOLE_NUMBER.fullmatch(raw) or not raw.strip("0"):
            raise ValidationError({self.page_query_param: [
                f"A page number of 1 or more (or {', '.join(map(repr, self.last_page_strings))}) is required."]})
        return raw

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters: list[dict[str, Any]] = super().get_schema_operation_parameters(view)
        for parameter in parameters:  # both are whole numbers from 1 (a page_size above the maximum is the maximum)
            parameter["schema"]["minimum"] = 1
            if parameter["name"] == self.page_query_param:  # or the last page by name
                parameter["schema"] = {"oneOf": [parameter["schema"],
                                                 {"type": "string", "enum": list(self.last_page_strings)}]}
        return parameters

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        response: dict[str, Any] = super().get_paginated_response_schema(schema)
        response["required"] = sorted(response["properties"])  # next and previous are there, null or not
        return response


class _CursorPages:
    """What the keyset paginations below share: the OpenAPI description of their lists, and their links."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500
    cursor_query_param = "cursor"
    counted = False  # whether the response carries the list's `count`
    cursor_examples = ("cD00ODY%3D", "cj0xJnA9NDg3")

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        following, preceding = self.cursor_examples
        properties: dict[str, Any] = {"count": {"type": "integer", "example": 123}} if self.counted else {}
        return {
            "type": "object",
            "required": [*properties, "next", "previous", "results"],
            "properties": {
                **properties,
                "next": {"type": "string", "nullable": True, "format": "uri",
                         "example": f"http://api.example.org/accounts/?{self.cursor_query_param}={following}"},
                "previous": {"type": "string", "nullable": True, "format": "uri",
                             "example": f"http://api.example.org/accounts/?{self.cursor_query_param}={preceding}"},
                "results": schema,
            },
        }

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        return [
            {"name": self.cursor_query_param, "required": False, "in": "query",
             "description": "Opaque position from a `next` or `previous` link.", "schema": {"type": "string"}},
            {"name": self.page_size_query_param, "required": False, "in": "query",
             "description": f"Results per page (default {self.page_size}, at most {self.max_page_size}).",
             "schema": {"type": "integer", "minimum": 1}},
        ]

    # The page's rows and whether pages lie either side, set by the pagination's paginate_queryset.
    rows: Sequence[Any]
    has_next: bool
    has_previous: bool
    base_url: str

    def get_next_link(self) -> str | None:
        if not self.has_next:
            return None
        if not self.rows:  # nothing past a `previous` cursor: the first page comes next
            return remove_query_param(self.base_url, self.cursor_query_param)
        return self._link(self.rows[-1], backwards=False)

    def get_previous_link(self) -> str | None:
        if not self.has_previous:
            return None
        if not self.rows:  # past the end: back to the first page
            return remove_query_param(self.base_url, self.cursor_query_param)
        return self._link(self.rows[0], backwards=True)

    def _link(self, row: Any, *, backwards: bool) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class Cursor:
    at: datetime
    id: int
    backwards: bool  # True: the page before this row (a `previous` link), else the page after it


class KeysetPagination(_CursorPages, BasePagination):
    """Newest first by (`time_field`, id), each page positioned by the row at its edge, not by an offset.

    No count(*) and no OFFSET: any page costs one index range scan (within a day of its cursor first: see
    _windowed), however deep and however many rows there are, and rows added or deleted meanwhile neither
    repeat nor skip a row when following `next` (equal times are ordered by id). The response keeps `next`,
    `previous` and `results`; `count` is gone.
    """

    time_field = "checked_at"
    # Tried in turn before the whole list (see _windowed); a sparse list costs up to two more (cheap) queries.
    windows = (timedelta(days=1), timedelta(days=8))
    invalid_cursor_message = "Invalid cursor."

    # Narrower than DRF's base, which also takes a list: a keyset page is a query on the time field and id.
    def paginate_queryset(self, queryset: QuerySet[Model], request: Request,  # type: ignore[override]
                          view: Any = None) -> list[Model]:
        self.base_url = request.build_absolute_uri()
        size = self._page_size(request)
        cursor = self._cursor_decode(request)
        time_field = self.time_field
        newest_first = [f"-{time_field}", "-id"]
        if cursor is None:
            rows = self._windowed(queryset, newest_first, size, anchor=timezone.now(), backwards=False)
            self.has_next, self.has_previous = len(rows) > size, False
            rows = rows[:size]
        elif not cursor.backwards:
            # `time <= at` alone is what the index range scan starts from; the OR then skips the rows at `at`
            # up to the cursor's own id.
            after = (queryset.filter(**{f"{time_field}__lte": cursor.at})
                     .filter(Q(**{f"{time_field}__lt": cursor.at}) | Q(id__lt=cursor.id)))
            rows = self._windowed(after, newest_first, size, anchor=cursor.at, backwards=False)
            self.has_next, self.has_previous = len(rows) > size, True
            rows = rows[:size]
        else:
            before = (queryset.filter(**{f"{time_field}__gte": cursor.at})
                      .filter(Q(**{f"{time_field}__gt": cursor.at}) | Q(id__gt=cursor.id)))
            rows = self._windowed(before, [time_field, "id"], size, anchor=cursor.at, backwards=True)
            self.has_next, self.has_previous = True, len(rows) > size
            rows = rows[:size][::-1]
        self.rows = rows
        return rows

    def _windowed(self, rows: QuerySet[Model], order: list[str], size: int, *, anchor: datetime,
                  backwards: bool) -> list[Model]:
        """The first size + 1 rows in `order`, looked for within a day of `anchor` first, then a week, then
        everywhere: a window names the partitions to read in the query, so PostgreSQL plans over one or two of
        the results' ~40 daily partitions instead of all of them (planning was most of a page's database time:
        ~3.8 ms of 4.3). Every row outside a window comes after every row inside it in `order`, so a window
        holding size + 1 rows holds the same first rows as the whole list."""
        for span in self.windows:
            bound = {f"{self.time_field}__lte" if backwards else f"{self.time_field}__gte":
                     anchor + span if backwards else anchor - span}
            found = list(rows.filter(**bound).order_by(*order)[:size + 1])
            if len(found) > size:
                return found
        return list(rows.order_by(*order)[:size + 1])

    def get_paginated_response(self, data: Any) -> Response:
        return Response({"next": self.get_next_link(), "previous": self.get_previous_link(), "results": data})

    def _link(self, row: Model, *, backwards: bool) -> str:
        at: datetime = getattr(row, self.time_field)
        raw = urlencode({"at": at.isoformat(), "id": row.pk, "b": int(backwards)})
        token = base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")
        return replace_query_param(self.base_url, self.cursor_query_param, token)

    def _cursor_decode(self, request: Request) -> Cursor | None:
        token = request.query_params.get(self.cursor_query_param)
        if not token:
            return None
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
            fields = dict(parse_qsl(raw, strict_parsing=True))
            at = datetime.fromisoformat(fields["at"])
            if at.tzinfo is None:
                raise ValueError("naive time")
            return Cursor(at=at, id=int(fields["id"]), backwards=fields["b"] == "1")
        except (binascii.Error, UnicodeDecodeError, KeyError, ValueError) as exc:
            raise NotFound(self.invalid_cursor_message) from exc

    def _page_size(self, request: Request) -> int:
        return page_size_parse(request, param=self.page_size_query_param, default=self.page_size,
                               maximum=self.max_page_size)

class IdKeysetPagination(_CursorPages, BasePagination):
    """Oldest first by id, each page positioned by the id at its edge, with the list's `count` from the view's
    `paginated_count()` (kept by the services, not counted).

    Any page costs one index range scan from its cursor, however deep: page 20,000 of a million monitors as
    much as page 1 (a page number there is an OFFSET over 999,950 index entries). Rows added or deleted
    meanwhile neither repeat nor skip a row when following `next`. Same response as page numbers:
    `count`, `next`, `previous`, `results`.
    """

    counted = True
    cursor_examples = ("aWQ9NTAmYj0w", "aWQ9NTEmYj0x")
    invalid_cursor_message = "Invalid cursor."

    # Narrower than DRF's base, which also takes a list: a keyset page is a query on the id.
    def paginate_queryset(self, queryset: QuerySet[Model], request: Request,  # type: ignore[override]
                          view: Any = None) -> list[Model]:
        self.base_url = request.build_absolute_uri()
        size = page_size_parse(request, param=self.page_size_query_param, default=self.page_size,
                               maximum=self.max_page_size)
        count_of = _view_count(view)
        self.count = count_of() if count_of is not None else queryset.count()
        cursor = self._cursor_decode(request)
        if cursor is None:
            rows = list(queryset.order_by("id")[:size + 1])
            self.has_next, self.has_previous = len(rows) > size, False
            rows = rows[:size]
        elif not cursor[1]:
            rows = list(queryset.filter(id__gt=cursor[0]).order_by("id")[:size + 1])
            self.has_next, self.has_previous = len(rows) > size, True
            rows = rows[:size]
        else:
            rows = list(queryset.filter(id__lt=cursor[0]).order_by("-id")[:size + 1])
            self.has_next, self.has_previous = True, len(rows) > size
            rows = rows[:size][::-1]
        self.rows = rows
        return rows

    def get_paginated_response(self, data: Any) -> Response:
        return Response({"count": self.count, "next": self.get_next_link(), "previous": self.get_previous_link(),
                         "results": data})

    def _link(self, row: Any, *, backwards: bool) -> str:
        # Rows may be models or values() dicts.
        pk = row["id"] if isinstance(row, dict) else row.pk
        return replace_query_param(self.base_url, self.cursor_query_param, cursor_encode(pk, backwards=backwards))

    def _cursor_decode(self, request: Request) -> tuple[int, bool] | None:
        token = request.query_params.get(self.cursor_query_param)
        if not token:
            return None
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
            fields = dict(parse_qsl(raw, strict_parsing=True))
            # An id of at most 18 digits fits PostgreSQL's bigint: a longer one would be a 500, not a 404.
            if (fields.keys() != {"id", "b"} or not _WHOLE_NUMBER.fullmatch(fields["id"]) or len(fields["id"]) > 18
                    or fields["b"] not in ("0", "1")):
                raise ValueError("not an id cursor")
            return int(fields["id"]), fields["b"] == "1"
        except (binascii.Error, UnicodeDecodeError, KeyError, ValueError) as exc:
            raise NotFound(self.invalid_cursor_message) from exc



def cursor_encode(pk: int, *, backwards: bool = False) -> str:
    """IdKeysetPagination's cursor for the page after (or before) the row with this id."""
    raw = urlencode({"id": pk, "b": int(backwards)})
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")
