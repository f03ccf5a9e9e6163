"""Pruning old rows: whole partitions of results where there are some, else bounded batches of short statements
that never lock a monitor, so probing goes on."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Model, QuerySet
from django.utils import timezone

from lookout.alerting.models import DegradedEpisode, Incident, Notification
from lookout.core.rate_counters import rate_counters_prune
from lookout.monitors import partitions
from lookout.monitors.models import IssuedTask, ProbeResult
from lookout.stats import partitions as rollup_partitions
from lookout.stats.models import DailyRollup, ResultRollup
from lookout.stats.rollups import day_floor, rolled_until


def batched_delete(rows: QuerySet[Model], *, order_by: str, batch: int, max_batches: int) -> int:
    """Delete matching rows oldest first, `batch` primary keys per statement; at most max_batches per run."""
    deleted = 0
    for _ in range(max_batches):
        ids = list(rows.order_by(order_by).values_list("pk", flat=True)[:batch])
        if not ids:
            break
        # Still filtered by `rows`: on the results table, its time range confines the delete to one partition.
        deleted += rows.filter(pk__in=ids).delete()[0]
    return deleted


@dataclass(frozen=True)
class ResultsPruned:
    partitions_created: list[str]
    partitions_dropped: list[str]
    rows_deleted: int  # one by one: of the partition straddling the cutoff, the default partition, or SQLite


def results_prune(*, now: datetime | None = None, batch: int | None = None, max_batches: int = 20) -> ResultsPruned:
    """Raw results older than LOOKOUT_RESULTS_RETENTION_DAYS; never any of an hour not rolled up yet.

    On PostgreSQL this also creates the coming days' partitions, then drops the partitions wholly before the
    cutoff; only the rows before it in the partition straddling it (and in the default partition) are deleted
    one by one, at most max_batches batches per run.
    """
    now = now or timezone.now()
    created = partitions.partitions_ensure(now=now)
    until = rolled_until()
    if until is None:
        # Nothing is rolled up: pruning would lose data the statistics still need.
        return ResultsPruned(partitions_created=created, partitions_dropped=[], rows_deleted=0)
    cutoff = min(now - timedelta(days=settings.LOOKOUT_RESULTS_RETENTION_DAYS), until)
    dropped = partitions.partitions_drop(before=cutoff)
    deleted = batched_delete(ProbeResult.objects.filter(checked_at__lt=cutoff), order_by="checked_at",
                             batch=batch or settings.LOOKOUT_PRUNE_BATCH_SIZE, max_batches=max_batches)
    return ResultsPruned(partitions_created=created, partitions_dropped=dropped, rows_deleted=deleted)


@dataclass(frozen=True)
class RollupsPruned:
    partitions_dropped: list[str]
    rows_deleted: int  # rollups on SQLite, incidents, alert history, rate counters, check-now task ids


def rollups_prune(*, now: datetime | None = None, batch: int | None = None, max_batches: int = 20) -> RollupsPruned:
    """Hourly rollups older than LOOKOUT_HOURLY_ROLLUP_RETENTION_DAYS, daily ones, closed incidents and alert
    history older than LOOKOUT_ROLLUP_RETENTION_DAYS; API rate counters whose window ended (one per client address
    that ever tried to log in, otherwise); check-now task ids older than their task's stored result
    (CELERY_RESULT_EXPIRES, a day: /tasks/{id}/ has nothing more to tell).

    Rollups go by whole UTC days (hourly) and months (daily): on PostgreSQL as partitions dropped, elsewhere in
    batches. The day or month straddling a cutoff stays until wholly past it (the statistics never read before
    their window anyway).
    """
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.LOOKOUT_ROLLUP_RETENTION_DAYS)
    hourly_cutoff = day_floor(now - timedelta(days=settings.LOOKOUT_HOURLY_ROLLUP_RETENTION_DAYS))
    daily_cutoff = cutoff.date().replace(day=1)  # the first day of the month the cutoff falls in
    batch = batch or settings.LOOKOUT_PRUNE_BATCH_SIZE
    dropped = (rollup_partitions.partitions_drop(rollup_partitions.HOURLY, before=hourly_cutoff.date())
               + rollup_partitions.partitions_drop(rollup_partitions.DAILY, before=daily_cutoff))
    deleted = 0
    if not rollup_partitions.partitioned():
        deleted += batched_delete(ResultRollup.objects.filter(hour__lt=hourly_cutoff), order_by="hour",
                                  batch=batch, max_batches=max_batches)
        deleted += batched_delete(DailyRollup.objects.filter(day__lt=daily_cutoff), order_by="day", batch=batch,
                                  max_batches=max_batches)
    # An incident's notifications and attempts go with it (cascade).
    deleted += batched_delete(Incident.objects.filter(ended_at__lt=cutoff), order_by="ended_at", batch=batch,
                              max_batches=max_batches)
    deleted += batched_delete(Notification.objects.filter(incident__isnull=True, created_at__lt=cutoff),
                              order_by="created_at", batch=batch, max_batches=max_batches)
    deleted += batched_delete(DegradedEpisode.objects.filter(ended_at__lt=cutoff), order_by="ended_at", batch=batch,
                              max_batches=max_batches)
    deleted += rate_counters_prune(now=now.timestamp())
    deleted += batched_delete(
        IssuedTask.objects.filter(created_at__lt=now - timedelta(seconds=settings.CELERY_RESULT_EXPIRES)),
        order_by="pk", batch=batch, max_batches=max_batches)
    return RollupsPruned(partitions_dropped=dropped, rows_deleted=deleted)
