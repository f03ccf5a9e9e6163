"""Uptime statistics of one monitor over a window: rolled-up days and hours plus raw results for the rest."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Q
from django.utils import timezone

from lookout.alerting.models import Incident
from lookout.monitors.models import Monitor, ProbeResult
from lookout.stats.buckets import BUCKET_FIELDS, BUCKETS, histogram, histogram_add, percentile
from lookout.stats.models import DailyRollup, ResultRollup
from lookout.stats.rollups import COUNTS, day_ceil, day_floor, hour_ceil, hour_floor, rolled_until

WINDOWS = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7),
           "30d": timedelta(days=30), "90d": timedelta(days=90)}


@dataclass
class Tally:
    checks: int = 0
    failures: int = 0
    latency_count: int = 0
    latency_sum_ms: float = 0.0

    def __post_init__(self) -> None:
        self.buckets = [0] * BUCKETS


def stored_regions(region: str) -> list[str]:
    """The `region` values results and rollups of a region carry: the home region's include those from before
    regions existed ("")."""
    return [region, ""] if region == settings.LOOKOUT_HOME_REGION else [region]


def _raw_add(tally: Tally, *, monitor: Monitor, start: datetime, end: datetime, inclusive: bool,
             region: str | None) -> None:
    # Only the edges of a window are raw (at most about two hours while the rollup task keeps up): one
    # query for their rows costs less than separate counts and latencies.
    results = ProbeResult.objects.filter(monitor=monitor, checked_at__gte=start)
    if region is not None:
        results = results.filter(region__in=stored_regions(region))
    results = results.filter(checked_at__lte=end) if inclusive else results.filter(checked_at__lt=end)
    rows = list(results.order_by().values_list("success", "response_time_ms"))
    latencies = [ms for success, ms in rows if success]
    tally.checks += len(rows)
    tally.failures += len(rows) - len(latencies)
    tally.latency_count += len(latencies)
    tally.latency_sum_ms += sum(latencies)
    histogram_add(tally.buckets, histogram(latencies))


# Raw SQL, built once: the ORM takes longer to compile an aggregate of 53 sums than PostgreSQL to answer it.
_SUMS = ", ".join(f"sum({column})" for column in COUNTS)
_HOURLY_SQL = (f'SELECT {_SUMS} FROM "{ResultRollup._meta.db_table}" WHERE monitor_id = %s '
               "AND ((hour >= %s AND hour < %s) OR (hour >= %s AND hour < %s))")
_DAILY_SQL = f'SELECT {_SUMS} FROM "{DailyRollup._meta.db_table}" WHERE monitor_id = %s AND day >= %s AND day < %s'


def _rollups_add(tally: Tally, sql: str, params: list[Any], *, region: str | None) -> None:
    # Summed in SQL, one row back: a 400-day window is 400 daily rows per region (and a few dozen hourly ones
    # at its edges). Unfiltered, every region's rows add up: the same sums as one row per period would give.
    if region is not None:
        regions = stored_regions(region)
        sql += f" AND region IN ({', '.join(['%s'] * len(regions))})"
        params = [*params, *regions]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        sums = dict(zip(COUNTS, cursor.fetchone(), strict=True))
    tally.checks += sums["checks"] or 0
    tally.failures += sums["failures"] or 0
    tally.latency_count += sums["latency_count"] or 0
    tally.latency_sum_ms += sums["latency_sum_ms"] or 0.0
    histogram_add(tally.buckets, [int(sums[field] or 0) for field in BUCKET_FIELDS])


def window_tally(*, monitor: Monitor, start: datetime, now: datetime, region: str | None = None) -> Tally:
    """Checks, failures and latency over [start, now]: daily rollups for the whole UTC days inside, hourly ones
    for the other rolled-up hours, raw results for the rest (after the last rolled-up hour, and a partial first
    hour).

    A window starting mid-hour takes that partial hour from raw results while they are kept; beyond the
    results' retention it takes the whole hour's rollup (the window then reaches back up to 59 minutes more);
    beyond the hourly rollups' retention, the whole first day's (up to 23 hours more).
    """
    tally = Tally()
    until = rolled_until()
    boundary = min(max(until, start), now) if until else start
    if boundary > start:
        if start >= now - timedelta(days=settings.LOOKOUT_RESULTS_RETENTION_DAYS):
            first_hour = hour_ceil(start)
            _raw_add(tally, monitor=monitor, start=start, end=min(first_hour, boundary), inclusive=False,
                     region=region)
        else:
            first_hour = hour_floor(start)
        hourly_kept_since = day_floor(now - timedelta(days=settings.LOOKOUT_HOURLY_ROLLUP_RETENTION_DAYS))
        first_day = day_ceil(first_hour) if first_hour >= hourly_kept_since else day_floor(first_hour)
        days_end = day_floor(boundary)  # every day before it is over and rolled up: it has its daily rows
        hours = [first_hour, boundary, boundary, boundary]  # [first_hour, boundary), and an empty range
        if first_day < days_end:
            hours = [first_hour, first_day, days_end, boundary]
            _rollups_add(tally, _DAILY_SQL, [monitor.pk, *map(connection.ops.adapt_datefield_value,
                                                              (first_day.date(), days_end.date()))], region=region)
        if first_hour < boundary:
            # Adapted as the ORM would (SQLite compares stored text: its format, not the driver's).
            _rollups_add(tally, _HOURLY_SQL, [monitor.pk, *map(connection.ops.adapt_datetimefield_value, hours)],
                         region=region)
    _raw_add(tally, monitor=monitor, start=boundary, end=now, inclusive=True, region=region)
    return tally


def downtime(*, monitor: Monitor, start: datetime, now: datetime) -> tuple[float, int]:
    """(seconds down, incidents) within [start, now], from the incidents overlapping it."""
    incidents = Incident.objects.filter(monitor=monitor, started_at__lte=now).filter(
        Q(ended_at__isnull=True) | Q(ended_at__gt=start)).values_list("started_at", "ended_at")
    seconds, count = 0.0, 0
    for started_at, ended_at in incidents:
        seconds += max(0.0, (min(ended_at or now, now) - max(started_at, start)).total_seconds())
        count += 1
    return seconds, count


def monitor_stats(*, monitor: Monitor, window: str, now: datetime | None = None,
                  region: str | None = None) -> dict[str, Any]:
    """The monitor's statistics over the window; with a region, its checks, failures and latency are that region's
    results alone (downtime and incidents stay the monitor's: its regions decide them together)."""
    now = now or timezone.now()
    start = now - WINDOWS[window]
    tally = window_tally(monitor=monitor, start=start, now=now, region=region)
    down_seconds, incidents = downtime(monitor=monitor, start=start, now=now)

    def ms(value: float | None) -> float | None:
        return round(value, 3) if value is not None else None

    return {
        "monitor": monitor.pk,
        "window": window,
        "start": start,
        "end": now,
        # Check-based: the share of probes that succeeded (null without any probe in the window).
        "uptime_percent": round(100 * (tally.checks - tally.failures) / tally.checks, 4) if tally.checks else None,
        "checks": tally.checks,
        "failures": tally.failures,
        "downtime_seconds": round(down_seconds, 3),
        "incidents": incidents,
        # Successful probes only: a timeout's duration is the timeout, not the target's latency.
        "response_time_ms": {
            "avg": ms(tally.latency_sum_ms / tally.latency_count) if tally.latency_count else None,
            "p50": ms(percentile(tally.buckets, 0.50)),
            "p95": ms(percentile(tally.buckets, 0.95)),
            "p99": ms(percentile(tally.buckets, 0.99)),
        },
    }
