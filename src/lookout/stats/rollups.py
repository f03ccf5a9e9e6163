"""Hourly rollups of raw probe results: computed by a beat-run task for hours that are over and settled."""

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Count, Min, Q, Sum
from django.db.models.functions import TruncHour
from django.utils import timezone

from lookout.monitors.models import Monitor, ProbeResult
from lookout.monitors.rules import MAX_TIMEOUT
from lookout.stats.buckets import EDGES_MS
from lookout.stats.models import ResultRollup, RollupProgress

HOUR = timedelta(hours=1)
# A result is stamped with its probe's start and recorded up to a timeout later (plus retries of the write):
# an hour is rolled up only once no more results for it can arrive.
SETTLE = timedelta(seconds=MAX_TIMEOUT + 120)


def hour_floor(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def hour_ceil(moment: datetime) -> datetime:
    floor = hour_floor(moment)
    return floor if floor == moment else floor + HOUR


def rolled_until() -> datetime | None:
    """Every hour before this one is rolled up (None: nothing is yet)."""
    return RollupProgress.objects.filter(pk=1).values_list("rolled_until", flat=True).first()


def hours_rollup(*, start: datetime, end: datetime) -> int:
    """(Re)compute every monitor's rollups of the hours in [start, end) per region from raw results, in one
    grouped query.

    Idempotent: a rerun overwrites the same rows with the same values. Returns the rows written.
    """
    at_most = {f"le{index}": Count("id", filter=Q(success=True, response_time_ms__lte=edge))
               for index, edge in enumerate(EDGES_MS)}
    groups = (ProbeResult.objects.filter(checked_at__gte=start, checked_at__lt=end).order_by()
              .annotate(hour=TruncHour("checked_at", tzinfo=UTC)).values("monitor_id", "hour", "region")
              .annotate(checks=Count("id"), failures=Count("id", filter=Q(success=False)),
                        latency_count=Count("id", filter=Q(success=True)),
                        latency_sum=Sum("response_time_ms", filter=Q(success=True)), **at_most))
    written, batch = 0, []
    for row in groups.iterator(chunk_size=2000):
        group: Mapping[str, Any] = row  # Django's plugin types the named counts, not the le{index} ones of a dict
        cumulative = [group[f"le{index}"] for index in range(len(EDGES_MS))] + [group["latency_count"]]
        buckets = [cumulative[0]] + [cumulative[i] - cumulative[i - 1] for i in range(1, len(cumulative))]
        batch.append(ResultRollup(monitor_id=group["monitor_id"], hour=group["hour"], region=group["region"],
                                  checks=group["checks"],
                                  failures=group["failures"], latency_count=group["latency_count"],
                                  latency_sum_ms=group["latency_sum"] or 0.0, latency_buckets=buckets))
        if len(batch) == 2000:  # bounded memory, whatever the number of monitors
            written += _rollups_write(batch)
            batch = []
    return written + _rollups_write(batch)


def _rollups_write(rows: list[ResultRollup]) -> int:
    if not rows:
        return 0
    # A monitor deleted since its results were read takes its results with it; its rollups must not be written.
    alive = set(Monitor.objects.filter(pk__in={row.monitor_id for row in rows}).values_list("pk", flat=True))
    rows = [row for row in rows if row.monitor_id in alive]
    ResultRollup.objects.bulk_create(
        rows, update_conflicts=True, unique_fields=["monitor", "hour", "region"],
        update_fields=["checks", "failures", "latency_count", "latency_sum_ms", "latency_buckets"],
    )
    return len(rows)


def rollup_run(*, now: datetime | None = None, max_hours: int = 24) -> int:
    """Roll up the settled hours after the last rolled one, at most max_hours per run; returns hours done."""
    now = now or timezone.now()
    end = hour_floor(now - SETTLE)
    start = rolled_until()
    if start is None:
        oldest = ProbeResult.objects.aggregate(oldest=Min("checked_at"))["oldest"]
        start = hour_floor(oldest) if oldest else end
    stop = min(end, start + max_hours * HOUR)
    with transaction.atomic():
        if stop > start:
            hours_rollup(start=start, end=stop)
        RollupProgress.objects.update_or_create(pk=1, defaults={"rolled_until": max(start, stop)})
    return max(0, int((stop - start) / HOUR))
