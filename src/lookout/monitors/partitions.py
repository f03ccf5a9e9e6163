"""Daily partitions of probe results on PostgreSQL: created a week ahead, dropped whole once expired.

Why daily: at 100k monitors probed every minute a day is ~144M rows. A week per partition would keep up to a
week of expired rows (or delete them row by row, the cost partitioning is there to avoid); an hour per
partition would mean 700+ partitions to plan over for a 30-day retention. A day keeps ~40 partitions and
lets retention drop a day at a time.

Rows whose day has no partition (the maintenance task did not run for a week, a clock far off, rows older
than the partitions made by the migration) land in the DEFAULT partition, so an insert never fails.
Creating a partition first moves that day's rows out of the default one, since PostgreSQL refuses to attach
a partition whose rows the default partition already holds.

Elsewhere (SQLite, `lookout dev`) the table is a plain one and these functions do nothing.
"""

import logging
import re
from datetime import UTC, date, datetime, timedelta

from django.db import DatabaseError, connection, transaction

from lookout.monitors.models import ProbeResult

logger = logging.getLogger(__name__)

TABLE = ProbeResult._meta.db_table
DEFAULT_PARTITION = f"{TABLE}_default"
DAYS_AHEAD = 7
# DDL on the results table waits for its lock behind any running query, and every insert queues behind the
# DDL meanwhile: give up quickly instead and try again at the next run.
LOCK_TIMEOUT = "5s"
_NAME = re.compile(rf"^{TABLE}_p(\d{{8}})$")


def partitioned() -> bool:
    return connection.vendor == "postgresql"


def partition_name(day: date) -> str:
    return f"{TABLE}_p{day:%Y%m%d}"


def _day_start(day: date) -> str:
    return datetime(day.year, day.month, day.day, tzinfo=UTC).isoformat()


def partition_days() -> dict[date, str]:
    """The daily partitions that exist, by day."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                       "WHERE i.inhparent = %s::regclass", [TABLE])
        names = [row[0] for row in cursor.fetchall()]
    return {datetime.strptime(match.group(1), "%Y%m%d").date(): name
            for name in names if (match := _NAME.match(name))}


def partition_create(day: date) -> bool:
    """Create the day's partition, moving its rows out of the default partition; False if the lock timed out."""
    name, start, end = partition_name(day), _day_start(day), _day_start(day + timedelta(days=1))
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
            # A table then ATTACH (not CREATE ... PARTITION OF): attaching takes a weaker lock on the parent,
            # so inserts and reads of results go on meanwhile.
            cursor.execute(f'CREATE TABLE "{name}" (LIKE "{TABLE}" INCLUDING DEFAULTS INCLUDING CONSTRAINTS)')
            cursor.execute(f'WITH moved AS (DELETE FROM "{DEFAULT_PARTITION}" WHERE checked_at >= %s '
                           f'AND checked_at < %s RETURNING *) INSERT INTO "{name}" SELECT * FROM moved', [start, end])
            cursor.execute(f'ALTER TABLE "{TABLE}" ATTACH PARTITION "{name}" '
                           f"FOR VALUES FROM ('{start}') TO ('{end}')")
    except DatabaseError:
        logger.warning("could not create results partition %s (will retry at the next run)", name, exc_info=True)
        return False
    logger.info("created results partition %s", name)
    return True


def partitions_ensure(*, now: datetime, days_ahead: int = DAYS_AHEAD) -> list[str]:
    """Create the partitions of today and the next days_ahead days that are missing; returns their names."""
    if not partitioned():
        return []
    today = now.astimezone(UTC).date()
    existing = partition_days()
    missing = [today + timedelta(days=n) for n in range(days_ahead + 1) if today + timedelta(days=n) not in existing]
    return [partition_name(day) for day in missing if partition_create(day)]


def partitions_drop(*, before: datetime) -> list[str]:
    """Drop every daily partition that ends at or before `before`; returns the names dropped."""
    if not partitioned():
        return []
    dropped = []
    for day, name in sorted(partition_days().items()):
        end = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
        if end > before:
            continue
        if partition_drop(name, kind="results", lock_timeout=LOCK_TIMEOUT):
            dropped.append(name)
    return dropped


def partition_drop(name: str, *, kind: str, lock_timeout: str) -> bool:
    """Drop one partition, waiting at most `lock_timeout` for its lock; False (logged) if it could not be dropped:
    the next retention run tries again."""
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL lock_timeout = '{lock_timeout}'")
            cursor.execute(f'DROP TABLE "{name}"')
    except DatabaseError:
        logger.warning("could not drop %s partition %s (will retry at the next run)", kind, name, exc_info=True)
        return False
    logger.info("dropped %s partition %s", kind, name)
    return True
