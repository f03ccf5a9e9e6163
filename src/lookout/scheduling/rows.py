"""Beat's reads and writes of django-celery-beat's tables: the PeriodicTask rows it schedules from, and the
bookkeeping (last_run_at, total_run_count) it writes back in batches.

Bookkeeping writes are marked (SET LOCAL lookout.beat_bookkeeping) so the change trigger of migration
scheduling/0001 does not echo beat's own writes back to it as changes.
"""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db import connection, transaction
from django_celery_beat.models import ClockedSchedule, CrontabSchedule, IntervalSchedule, PeriodicTask, SolarSchedule

from lookout.scheduling.entries import CalendarRule, Entry, IntervalRule, RowParser, interval_seconds, timestamp

NOTIFY_CHANNEL = "lookout_schedule"
NOTIFY_ALL = "*"  # payload of a change that touches schedule definitions (crontabs, intervals) shared by rows

_ROW_FIELDS = (
    "id", "name", "task", "args", "kwargs", "queue", "exchange", "routing_key", "priority", "headers", "expires",
    "expire_seconds", "one_off", "start_time", "last_run_at", "total_run_count", "date_changed",
    "interval__every", "interval__period", "crontab_id", "solar_id", "clocked_id",
)
_CALENDARS = (("crontab_id", CrontabSchedule), ("solar_id", SolarSchedule), ("clocked_id", ClockedSchedule))
# A crontab's runs are at least a minute apart; the estimate only decides how late a run may still be sent.
_CALENDAR_PERIOD = 60.0


@dataclass(frozen=True, slots=True)
class RunMark:
    """Runs sent for one schedule since the last write: the due time of the latest, and how many."""

    due: float
    runs: int


_TIMES = ("expires", "start_time", "last_run_at", "date_changed")
# At 1M rows Django's values() (a dict and four datetimes per row) was most of the ~30 s read: PostgreSQL hands
# the times over as Unix seconds and the rows come through a server-side cursor in chunks (no 1M-row list).
_READ_CHUNK = 20_000


def entries_read(ids: Iterable[int] | None = None) -> dict[int, Entry]:
    """Enabled schedules as entries, all of them or those with the given ids (missing ids: gone or disabled)."""
    if connection.vendor == "postgresql":
        return _entries_from(_rows_postgresql(None if ids is None else list(ids)))
    rows = PeriodicTask.objects.filter(enabled=True)
    if ids is not None:
        rows = rows.filter(id__in=list(ids))
    values = list(rows.values(*_ROW_FIELDS))
    for row in values:
        for key in _TIMES:
            row[key] = timestamp(row[key])
    return _entries_from(values)


def _entries_from(rows: Iterable[dict[str, Any]]) -> dict[int, Entry]:
    intervals: dict[tuple[int, str], IntervalRule] = {}
    calendars: dict[tuple[str, int], CalendarRule | None] = {}
    parser = RowParser()
    entries = {}
    for row in rows:
        rule = _rule(row, intervals, calendars)
        entry = parser.entry(row, rule) if rule is not None else None
        if entry is not None:
            entries[entry.id] = entry
    return entries


def _rows_postgresql(ids: list[int] | None) -> Iterator[dict[str, Any]]:
    table = PeriodicTask._meta.db_table
    intervals = IntervalSchedule._meta.db_table
    epoch = "extract(epoch FROM t.{0})::float8 AS {0}"
    sql = (f"SELECT t.id, t.name, t.task, t.args, t.kwargs, t.queue, t.exchange, t.routing_key, t.priority, "
           f"t.headers, {epoch.format('expires')}, t.expire_seconds, t.one_off, {epoch.format('start_time')}, "
           f"{epoch.format('last_run_at')}, t.total_run_count, {epoch.format('date_changed')}, "
           f"i.every AS interval__every, i.period AS interval__period, t.crontab_id, t.solar_id, t.clocked_id "
           f"FROM {table} AS t LEFT JOIN {intervals} AS i ON i.id = t.interval_id WHERE t.enabled")
    params: list[Any] = []
    if ids is not None:
        sql += " AND t.id = ANY(%s)"
        params.append(ids)
    connection.ensure_connection()
    with transaction.atomic():  # a server-side cursor lives inside a transaction
        with connection.connection.cursor(name="lookout_beat_read") as cursor:
            cursor.itersize = _READ_CHUNK
            cursor.execute(sql, params)
            names = [column.name for column in cursor.description or ()]
            for values in cursor:
                yield dict(zip(names, values, strict=True))


def _rule(row: dict[str, Any], intervals: dict[tuple[int, str], IntervalRule],
          calendars: dict[tuple[str, int], CalendarRule | None]) -> IntervalRule | CalendarRule | None:
    if row["interval__every"] is not None:
        key = (row["interval__every"], row["interval__period"])
        # One rule object per distinct interval: 100k monitors share a handful.
        rule = intervals.get(key)
        if rule is None:
            rule = intervals[key] = IntervalRule(interval_seconds(*key))
        return rule
    for column, model in _CALENDARS:
        pk = row[column]
        if pk is not None:
            # One read per distinct crontab, solar or clocked row (with the rows streaming, read when first met).
            if (column, pk) not in calendars:
                found = model.objects.filter(pk=pk).first()
                calendars[(column, pk)] = CalendarRule(found.schedule, _CALENDAR_PERIOD) if found else None
            return calendars[(column, pk)]
    return None


def runs_record(marks: dict[int, RunMark]) -> None:
    """Write last_run_at (= the due time of the latest run sent) and total_run_count, in one statement.

    Guarded so a write that arrives late never moves a schedule backwards: last_run_at only grows, and a run
    due before the row's start_time (sent just before a pause and resume) is not recorded over the resume.
    """
    if not marks:
        return
    table = PeriodicTask._meta.db_table
    ids = sorted(marks)  # one lock order for every write
    runs = [marks[i].runs for i in ids]
    guard = "(t.last_run_at IS NULL OR t.last_run_at < v.due) AND (t.start_time IS NULL OR t.start_time <= v.due)"
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL lookout.beat_bookkeeping = 'on'")
            # Unix seconds, turned into timestamps by PostgreSQL: no datetime per run in beat (~16.7k a second).
            cursor.execute(
                f"UPDATE {table} AS t SET last_run_at = v.due, total_run_count = t.total_run_count + v.runs "
                f"FROM (SELECT id, to_timestamp(due) AS due, runs "
                f"      FROM unnest(%s::int[], %s::float8[], %s::int[]) AS u(id, due, runs)) AS v "
                f"WHERE t.id = v.id AND {guard}", [ids, [marks[i].due for i in ids], runs])
        else:
            dues = [connection.ops.adapt_datetimefield_value(datetime.fromtimestamp(marks[i].due, UTC)) for i in ids]
            cursor.executemany(
                f"UPDATE {table} AS t SET last_run_at = v.due, total_run_count = t.total_run_count + v.runs "
                f"FROM (SELECT %s AS id, %s AS due, %s AS runs) AS v WHERE t.id = v.id AND {guard}",
                list(zip(ids, dues, runs, strict=True)))


def schedules_disable(ids: list[int]) -> None:
    """One-off tasks that ran, and tasks past their `expires`: disabled, as django-celery-beat does."""
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL lookout.beat_bookkeeping = 'on'")
        PeriodicTask.objects.filter(id__in=ids).update(enabled=False)
