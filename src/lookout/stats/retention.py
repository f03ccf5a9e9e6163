"""Pruning old rows in bounded batches: short statements that never lock a monitor, so probing goes on."""

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Model, QuerySet
from django.utils import timezone

from lookout.alerting.models import DegradedEpisode, Incident, Notification
from lookout.monitors.models import ProbeResult
from lookout.stats.models import ResultRollup
from lookout.stats.rollups import rolled_until


def batched_delete(rows: QuerySet[Model], *, order_by: str, batch: int, max_batches: int) -> int:
    """Delete matching rows oldest first, `batch` primary keys per statement; at most max_batches per run."""
    deleted = 0
    for _ in range(max_batches):
        ids = list(rows.order_by(order_by).values_list("pk", flat=True)[:batch])
        if not ids:
            break
        deleted += rows.model.objects.filter(pk__in=ids).delete()[0]
    return deleted


def results_prune(*, now: datetime | None = None, batch: int | None = None, max_batches: int = 20) -> int:
    """Raw results older than LOOKOUT_RESULTS_RETENTION_DAYS; never any of an hour not rolled up yet."""
    now = now or timezone.now()
    until = rolled_until()
    if until is None:
        return 0  # nothing is rolled up: pruning would lose data the statistics still need
    cutoff = min(now - timedelta(days=settings.LOOKOUT_RESULTS_RETENTION_DAYS), until)
    return batched_delete(ProbeResult.objects.filter(checked_at__lt=cutoff), order_by="checked_at",
                          batch=batch or settings.LOOKOUT_PRUNE_BATCH_SIZE, max_batches=max_batches)


def rollups_prune(*, now: datetime | None = None, batch: int | None = None, max_batches: int = 20) -> int:
    """Rollups, closed incidents and alert history older than LOOKOUT_ROLLUP_RETENTION_DAYS."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.LOOKOUT_ROLLUP_RETENTION_DAYS)
    batch = batch or settings.LOOKOUT_PRUNE_BATCH_SIZE
    deleted = batched_delete(ResultRollup.objects.filter(hour__lt=cutoff), order_by="hour", batch=batch,
                             max_batches=max_batches)
    # An incident's notifications and attempts go with it (cascade).
    deleted += batched_delete(Incident.objects.filter(ended_at__lt=cutoff), order_by="ended_at", batch=batch,
                              max_batches=max_batches)
    deleted += batched_delete(Notification.objects.filter(incident__isnull=True, created_at__lt=cutoff),
                              order_by="created_at", batch=batch, max_batches=max_batches)
    deleted += batched_delete(DegradedEpisode.objects.filter(ended_at__lt=cutoff), order_by="ended_at", batch=batch,
                              max_batches=max_batches)
    return deleted
