"""Rollups of raw probe results, computed by a beat-run task for hours that are over and settled: one row per
monitor, region and hour, and per monitor, region and UTC day (the sum of its hours) once the day is over.

On PostgreSQL an hour is rolled up by SQL alone, set-based: one grouped scan of the hour's results (its day's
partition only), into a temporary table (CREATE TABLE AS may run in parallel, an INSERT ... SELECT never does),
then one INSERT ... ON CONFLICT DO UPDATE of the hour's rows. Elsewhere (SQLite, `lookout dev`) a plainer ORM
path computes the same rows.

Idempotent: rolling an hour up again rewrites its rows with the same values (and its day's, if that is over).
Results arriving late, after their hour was rolled up (a region's agent catching up, a recording backlog), are
found by the next runs for LOOKOUT_ROLLUP_LATE_HOURS hours: an hour whose results outnumber the checks of its
rollups is rolled up again. Later than that, they stay out of the rollups (but in the raw results).
"""

from datetime import UTC, date, datetime, time, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Min, Q, Sum
from django.db.models.functions import TruncHour
from django.utils import timezone

from lookout.monitors.models import Monitor, ProbeResult
from lookout.monitors.rules import MAX_TIMEOUT
from lookout.stats import partitions
from lookout.stats.buckets import BUCKET_FIELDS, BUCKETS, EDGES_MS
from lookout.stats.models import DailyRollup, ResultRollup, RollupProgress

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
# A result is stamped with its probe's start and recorded up to a timeout later (plus retries of the write):
# an hour is rolled up only once no more results for it can arrive.
SETTLE = timedelta(seconds=MAX_TIMEOUT + 120)
# Partitions are made this far ahead of the hours being rolled up (a run that cannot make one retries later).
DAYS_AHEAD = 2

RESULTS = ProbeResult._meta.db_table
HOURLY = ResultRollup._meta.db_table
DAILY = DailyRollup._meta.db_table
MONITORS = Monitor._meta.db_table
COUNTS = ("checks", "failures", "latency_count", "latency_sum_ms", *BUCKET_FIELDS)

# The hour's histogram is summed in packed form: a bucket's count in 10 bits, 6 buckets per bigint, so 9 sums
# per row instead of 49 counts (each aggregate costs about as much per row as the scan itself; measured in
# bench/rollups.py). Exact while a group has at most 1023 successful probes in the hour (one per 3.5 s); the rare
# groups with more (push monitors pinged often) are rolled up by the exact, slower query.
PACK_BITS, PACK_PER_WORD = 10, 6
PACK_MAX = (1 << PACK_BITS) - 1
PACK_WORDS = -(-BUCKETS // PACK_PER_WORD)
# bucket_index (Prometheus' `le`: a value equal to an edge is in that edge's bucket) in SQL. width_bucket counts
# the edges <= its operand: over the negated edges, those >= the value, so the index is 48 minus that.
_NEGATED_EDGES = "'{" + ",".join(repr(-edge) for edge in reversed(EDGES_MS)) + "}'::float8[]"
_BUCKET_SQL = f"{len(EDGES_MS)} - width_bucket(-response_time_ms, {_NEGATED_EDGES})"


def hour_floor(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def hour_ceil(moment: datetime) -> datetime:
    floor = hour_floor(moment)
    return floor if floor == moment else floor + HOUR


def day_floor(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def day_ceil(moment: datetime) -> datetime:
    floor = day_floor(moment)
    return floor if floor == moment else floor + DAY


def day_start(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def rolled_until() -> datetime | None:
    """Every hour before this one is rolled up, and every day that ends at or before it (None: nothing is yet)."""
    return RollupProgress.objects.filter(pk=1).values_list("rolled_until", flat=True).first()


def hours_rollup(*, start: datetime, end: datetime) -> int:
    """(Re)compute every monitor's rollups of the hours in [start, end) per region from raw results, one hour at
    a time (so memory stays bounded: an hour at 1M monitors is ~60M results, 1M rows). Returns the rows written."""
    written, hour = 0, hour_floor(start)
    partitions.partitions_ensure(first=hour.date(), last=end.date())  # none missing when rollup_run calls
    while hour < end:
        with transaction.atomic():  # the PostgreSQL path's temporary table lives until the commit
            written += _hour_rollup_sql(hour) if partitions.partitioned() else _hour_rollup_plain(hour)
        hour += HOUR
    return written


def _hour_rollup_sql(hour: datetime) -> int:
    params = {"start": hour, "end": hour + HOUR}
    packed = ", ".join(f"sum(bit) FILTER (WHERE word = {word})::bigint AS p{word}" for word in range(PACK_WORDS))
    unpacked = ", ".join(
        f"nullif((p{index // PACK_PER_WORD} >> {PACK_BITS * (index % PACK_PER_WORD)}) & {PACK_MAX}, 0)"
        for index in range(BUCKETS))
    with connection.cursor() as cursor:
        # The grouping's hash table holds one entry per monitor and region (~1 KB at 1M monitors: ~1 GB): in
        # memory it is several times faster than spilled to disk.
        cursor.execute("SELECT set_config('work_mem', %s, true)", [settings.LOOKOUT_ROLLUP_WORK_MEM])
        # OFFSET 0 keeps each level's expressions computed once per row: flattened, the bucket's width_bucket
        # would be evaluated in each of the 9 sums.
        cursor.execute("DROP TABLE IF EXISTS rollup_hour")
        cursor.execute(f"""
            CREATE TEMPORARY TABLE rollup_hour ON COMMIT DROP AS
            SELECT monitor_id, region, count(*) AS checks, count(word) AS latency_count,
                   coalesce(sum(ms), 0) AS latency_sum_ms, {packed}
            FROM (SELECT monitor_id, region, ms, bucket / {PACK_PER_WORD} AS word,
                         1::bigint << ({PACK_BITS} * (bucket %% {PACK_PER_WORD})) AS bit
                  FROM (SELECT monitor_id, region, CASE WHEN success THEN response_time_ms END AS ms,
                               CASE WHEN success THEN {_BUCKET_SQL} END AS bucket
                        FROM "{RESULTS}" WHERE checked_at >= %(start)s AND checked_at < %(end)s
                        OFFSET 0) AS results
                  OFFSET 0) AS bucketed
            GROUP BY monitor_id, region""", params)
        # Monitors deleted since took their results with them: their rollups must not be written.
        cursor.execute(f"""
            INSERT INTO "{HOURLY}" (monitor_id, hour, region, {", ".join(COUNTS)})
            SELECT monitor_id, %(start)s, region, checks, checks - latency_count, latency_count, latency_sum_ms,
                   {unpacked}
            FROM rollup_hour AS g
            WHERE latency_count <= {PACK_MAX} AND EXISTS (SELECT FROM "{MONITORS}" m WHERE m.id = g.monitor_id)
            {_upsert(("monitor_id", "hour", "region"))}""", params)
        written: int = cursor.rowcount
        cursor.execute(f"SELECT monitor_id FROM rollup_hour WHERE latency_count > {PACK_MAX}")
        crowded = sorted({row[0] for row in cursor.fetchall()})
        if crowded:
            counted = ", ".join(
                f"nullif(count(*) FILTER (WHERE success AND {_BUCKET_SQL} = {index}), 0)" for index in range(BUCKETS))
            cursor.execute(f"""
                INSERT INTO "{HOURLY}" (monitor_id, hour, region, {", ".join(COUNTS)})
                SELECT monitor_id, %(start)s, region, count(*), count(*) FILTER (WHERE NOT success),
                       count(*) FILTER (WHERE success),
                       coalesce(sum(response_time_ms) FILTER (WHERE success), 0), {counted}
                FROM "{RESULTS}" AS r
                WHERE monitor_id = ANY(%(crowded)s) AND checked_at >= %(start)s AND checked_at < %(end)s
                  AND EXISTS (SELECT FROM "{MONITORS}" m WHERE m.id = r.monitor_id)
                GROUP BY monitor_id, region
                {_upsert(("monitor_id", "hour", "region"))}""", {**params, "crowded": crowded})
            written += cursor.rowcount
        cursor.execute("DROP TABLE rollup_hour")  # at once: the next hour may be in the same transaction
    return written


def _upsert(key: tuple[str, ...]) -> str:
    return (f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET "
            + ", ".join(f"{column} = EXCLUDED.{column}" for column in COUNTS))


def _hour_rollup_plain(hour: datetime) -> int:
    at_most = {f"le{index}": Count("id", filter=Q(success=True, response_time_ms__lte=edge))
               for index, edge in enumerate(EDGES_MS)}
    groups = (ProbeResult.objects.filter(checked_at__gte=hour, checked_at__lt=hour + HOUR).order_by()
              .annotate(hour=TruncHour("checked_at", tzinfo=UTC)).values("monitor_id", "hour", "region")
              .annotate(checks=Count("id"), failures=Count("id", filter=Q(success=False)),
                        latency_count=Count("id", filter=Q(success=True)),
                        latency_sum=Sum("response_time_ms", filter=Q(success=True)), **at_most))
    rows = []
    for group in groups:
        cumulative = [group[f"le{index}"] for index in range(len(EDGES_MS))] + [group["latency_count"]]
        buckets = [cumulative[0]] + [cumulative[i] - cumulative[i - 1] for i in range(1, len(cumulative))]
        rows.append(ResultRollup(monitor_id=group["monitor_id"], hour=hour, region=group["region"],
                                 checks=group["checks"], failures=group["failures"],
                                 latency_count=group["latency_count"], latency_sum_ms=group["latency_sum"] or 0.0,
                                 **{field: count or None for field, count in zip(BUCKET_FIELDS, buckets, strict=True)}))
    # A monitor deleted since its results were read takes its results with it; its rollups must not be written.
    alive = set(Monitor.objects.filter(pk__in={row.monitor_id for row in rows}).values_list("pk", flat=True))
    rows = [row for row in rows if row.monitor_id in alive]
    ResultRollup.objects.bulk_create(rows, batch_size=500, update_conflicts=True,
                                     unique_fields=["monitor", "hour", "region"], update_fields=list(COUNTS))
    return len(rows)


def day_rollup(day: date) -> int:
    """(Re)compute every monitor's daily rollups of the UTC day from its hourly ones; returns the rows written."""
    start = day_start(day)
    partitions.partitions_ensure(first=day, last=day)
    if partitions.partitioned():
        sums = ", ".join(f"sum({column})" for column in COUNTS)
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('work_mem', %s, true)", [settings.LOOKOUT_ROLLUP_WORK_MEM])
            cursor.execute(f"""
                INSERT INTO "{DAILY}" (monitor_id, day, region, {", ".join(COUNTS)})
                SELECT monitor_id, %(day)s::date, region, {sums} FROM "{HOURLY}"
                WHERE hour >= %(start)s AND hour < %(end)s GROUP BY monitor_id, region
                {_upsert(("monitor_id", "day", "region"))}""", {"day": day, "start": start, "end": start + DAY})
            rows_written: int = cursor.rowcount
            return rows_written
    groups = (ResultRollup.objects.filter(hour__gte=start, hour__lt=start + DAY).order_by()
              .values("monitor_id", "region").annotate(**{f"total_{column}": Sum(column) for column in COUNTS}))
    rows = [DailyRollup(monitor_id=group["monitor_id"], day=day, region=group["region"],
                        **{column: group[f"total_{column}"] for column in COUNTS}) for group in groups]
    DailyRollup.objects.bulk_create(rows, batch_size=500, update_conflicts=True,
                                    unique_fields=["monitor", "day", "region"], update_fields=list(COUNTS))
    return len(rows)


def late_hours(*, until: datetime, hours: int) -> list[datetime]:
    """The rolled-up hours of the last `hours` before `until` that have results their rollups do not count."""
    late = []
    for back in range(hours, 0, -1):
        hour = until - back * HOUR
        results = ProbeResult.objects.filter(checked_at__gte=hour, checked_at__lt=hour + HOUR).count()
        rolled = ResultRollup.objects.filter(hour=hour).aggregate(checks=Sum("checks"))["checks"] or 0
        if results > rolled:
            late.append(hour)
    return late


def _next_results_hour(hour: datetime, stop: datetime) -> datetime:
    """The first hour in [hour, stop) with results (stop if none): one probe of the checked_at index."""
    following = (ProbeResult.objects.filter(checked_at__gte=hour, checked_at__lt=stop).order_by("checked_at")
                 .values_list("checked_at", flat=True).first())
    return hour_floor(following) if following else stop


def rollup_run(*, now: datetime | None = None, max_hours: int = 24) -> int:
    """Roll up the settled hours after the last rolled one, at most max_hours per run, each hour in its own
    transaction (with its day's daily rollups when it is the day's last); first the recent hours that late
    results reached. Returns the hours rolled up (not counting those rolled again)."""
    now = now or timezone.now()
    end = hour_floor(now - SETTLE)
    start = rolled_until()
    if start is None:
        oldest = ProbeResult.objects.aggregate(oldest=Min("checked_at"))["oldest"]
        start = hour_floor(oldest) if oldest else end
    stop = max(start, min(end, start + max_hours * HOUR))
    # The coming days' partitions, ahead (and in transactions of their own); those of older hours being rolled
    # up are made when they are, only for hours that have results.
    partitions.partitions_ensure(first=now.date(), last=(now + DAYS_AHEAD * DAY).date())

    for hour in late_hours(until=start, hours=settings.LOOKOUT_ROLLUP_LATE_HOURS):
        with transaction.atomic():
            hours_rollup(start=hour, end=hour + HOUR)
            if day_ceil(hour + HOUR) <= start:  # its day was over and rolled up daily already
                day_rollup(hour.date())

    hour = start
    while hour < stop:
        with transaction.atomic():
            following = _next_results_hour(hour, stop)
            if following > hour:
                # No results until then: nothing to roll up (a run catching up over a gap takes no time), but
                # the day rolled up so far may end in the gap.
                if hour > day_floor(hour) and day_floor(hour) + DAY <= following:
                    day_rollup(hour.date())
                hour = following
            else:
                hours_rollup(start=hour, end=hour + HOUR)
                hour += HOUR
                if hour == day_floor(hour):  # the day's last hour: the day is over
                    day_rollup((hour - DAY).date())
            RollupProgress.objects.update_or_create(pk=1, defaults={"rolled_until": hour})
    if stop == start:
        RollupProgress.objects.update_or_create(pk=1, defaults={"rolled_until": start})
    return int((stop - start) / HOUR)
