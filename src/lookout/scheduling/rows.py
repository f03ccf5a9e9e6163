"""Beat's reads and writes of django-celery-beat's tables: the PeriodicTask rows it schedules from, and the
bookkeeping (last_run_at, total_run_count) it writes back in batches.

Bookkeeping writes are marked (SET LOCAL lookout.beat_bookkeeping) so the change trigger of migration
scheduling/0001 does not echo beat's own writes back to it as changes.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db import connection, transaction
from django_celery_beat.models import ClockedSchedule, CrontabSchedule, PeriodicTask, SolarSchedule

from lookout.scheduling.entries import CalendarRule, Entry, IntervalRule, entry_from_row, interval_seconds

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


def entries_read(ids: Iterable[int] | None = None) -> dict[int, Entry]:
    """Enabled schedules as entries, all of them or those with the given ids (missing ids: gone or disabled)."""
    rows = PeriodicTask.objects.filter(enabled=True)
    if ids is not None:
        rows = rows.filter(id__in=list(ids))
    values = list(rows.values(*_ROW_FIELDS))
    calendars = _calendar_rules(values)
    intervals: dict[tuple[int, str], IntervalRule] = {}
    entries = {}
    for row in values:
        rule = _rule(row, intervals, calendars)
        entry = entry_from_row(row, rule) if rule is not None else None
        if entry is not None:
            entries[entry.id] = entry
    return entries


def _rule(row: dict[str, Any], intervals: dict[tuple[int, str], IntervalRule],
          calendars: dict[tuple[str, int], CalendarRule]) -> IntervalRule | CalendarRule | None:
    if row["interval__every"] is not None:
        key = (row["interval__every"], row["interval__period"])
        # One rule object per distinct interval: 100k monitors share a handful.
        if key not in intervals:
            intervals[key] = IntervalRule(interval_seconds(*key))
        return intervals[key]
    for column, _ in _CALENDARS:
        if row[column] is not None:
            return calendars.get((column, row[column]))
    return None


def _calendar_rules(values: list[dict[str, Any]]) -> dict[tuple[str, int], CalendarRule]:
    rules = {}
    for column, model in _CALENDARS:
        ids = {row[column] for row in values if row[column] is not None}
        if ids:
            for pk, schedule in model.objects.in_bulk(ids).items():
                rules[(column, pk)] = CalendarRule(schedule.schedule, _CALENDAR_PERIOD)
    return rules


def runs_record(marks: dict[int, RunMark]) -> None:
    """Write last_run_at (= the due time of the latest run sent) and total_run_count, in one statement.

    Guarded so a write that arrives late never moves a schedule backwards: last_run_at only grows, and a run
    due before the row's start_time (sent just before a pause and resume) is not recorded over the resume.
    """
    if not marks:
        return
    table = PeriodicTask._meta.db_table
    ids = sorted(marks)  # one lock order for every write
    dues = [connection.ops.adapt_datetimefield_value(datetime.fromtimestamp(marks[i].due, UTC)) for i in ids]
    runs = [marks[i].runs for i in ids]
    guard = "(t.last_run_at IS NULL OR t.last_run_at < v.due) AND (t.start_time IS NULL OR t.start_time <= v.due)"
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL lookout.beat_bookkeeping = 'on'")
            cursor.execute(
                f"UPDATE {table} AS t SET last_run_at = v.due, total_run_count = t.total_run_count + v.runs "
                f"FROM unnest(%s::int[], %s::timestamptz[], %s::int[]) AS v(id, due, runs) "
                f"WHERE t.id = v.id AND {guard}", [ids, dues, runs])
        else:
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
