"""Partitions of the rollup tables on PostgreSQL: hourly rollups by UTC day, daily rollups by UTC month.

Why: at 1M monitors an hour adds 1M hourly rows (24M a day) and a day 1M daily rows (~400M over the 400 days
kept). Retention then drops a whole partition (one quick DROP TABLE) instead of deleting millions of rows, and
a statistics query of one monitor touches the few partitions of its window only.

Only the rollup task writes these tables, and it creates the partitions of the periods it is about to write
first (and those of the coming days), in short transactions of their own: there is no default partition, an
insert into a period without one would fail. Creating a table then ATTACHing it (not CREATE ... PARTITION OF)
takes a weaker lock on the parent, so the statistics are read meanwhile.

Elsewhere (SQLite, `lookout dev`) the tables are plain ones, these functions do nothing and retention deletes rows.
"""

import logging
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from django.db import DatabaseError, connection, transaction

from lookout.monitors.partitions import partition_drop
from lookout.stats.models import DailyRollup, ResultRollup

logger = logging.getLogger(__name__)

# DDL on a rollup table waits for its lock behind any running query, and every reader queues behind the DDL
# meanwhile: give up quickly instead and try again at the next run.
LOCK_TIMEOUT = "5s"


@dataclass(frozen=True)
class Scheme:
    table: str
    monthly: bool  # else daily

    def period_start(self, day: date) -> date:
        return day.replace(day=1) if self.monthly else day

    def period_end(self, start: date) -> date:
        if not self.monthly:
            return start + timedelta(days=1)
        return date(start.year + start.month // 12, start.month % 12 + 1, 1)

    def name(self, start: date) -> str:
        return f"{self.table}_p{start:%Y%m}" if self.monthly else f"{self.table}_p{start:%Y%m%d}"

    def bound(self, day: date) -> str:
        # The hourly table's key is a timestamptz, the daily one's a date.
        return day.isoformat() if self.monthly else datetime(day.year, day.month, day.day, tzinfo=UTC).isoformat()


HOURLY = Scheme(ResultRollup._meta.db_table, monthly=False)
DAILY = Scheme(DailyRollup._meta.db_table, monthly=True)


def partitioned() -> bool:
    return connection.vendor == "postgresql"


def partitions(scheme: Scheme) -> dict[date, str]:
    """The partitions that exist, by the first day of their period."""
    pattern = re.compile(rf"^{scheme.table}_p(\d{{6}}|\d{{8}})$")
    with connection.cursor() as cursor:
        cursor.execute("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                       "WHERE i.inhparent = %s::regclass", [scheme.table])
        names = [row[0] for row in cursor.fetchall()]
    found = {}
    for name in names:
        if match := pattern.match(name):
            digits = match.group(1)
            found[datetime.strptime(digits, "%Y%m" if len(digits) == 6 else "%Y%m%d").date()] = name
    return found


def partition_create(scheme: Scheme, start: date) -> bool:
    """Create the period's partition (empty: nothing else could hold its rows); False if the lock timed out."""
    name = scheme.name(start)
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
            cursor.execute(f'CREATE TABLE "{name}" (LIKE "{scheme.table}" INCLUDING DEFAULTS INCLUDING CONSTRAINTS)')
            cursor.execute(f'ALTER TABLE "{scheme.table}" ATTACH PARTITION "{name}" FOR VALUES '
                           f"FROM ('{scheme.bound(start)}') TO ('{scheme.bound(scheme.period_end(start))}')")
    except DatabaseError:
        logger.warning("could not create rollup partition %s (will retry at the next run)", name, exc_info=True)
        return False
    logger.info("created rollup partition %s", name)
    return True


def partitions_ensure(*, first: date, last: date) -> list[str]:
    """Create the missing partitions of both tables for the days first..last; returns their names."""
    if not partitioned():
        return []
    created = []
    for scheme in (HOURLY, DAILY):
        existing = partitions(scheme)
        start = scheme.period_start(first)
        while start <= last:
            if start not in existing and partition_create(scheme, start):
                created.append(scheme.name(start))
            start = scheme.period_end(start)
    return created


def partitions_drop(scheme: Scheme, *, before: date) -> list[str]:
    """Drop every partition whose period ends at or before the day `before`; returns the names dropped."""
    if not partitioned():
        return []
    dropped = []
    for start, name in sorted(partitions(scheme).items()):
        if scheme.period_end(start) > before:
            continue
        if partition_drop(name, kind="rollup", lock_timeout=LOCK_TIMEOUT):
            dropped.append(name)
    return dropped
