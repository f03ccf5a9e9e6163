"""What the regions endpoint, the suspect sweep and the metrics read of the regions: results per region over the
window, and the workers seen recently."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, Q, Value
from django.db.models.functions import Coalesce, NullIf
from django.utils import timezone

from lookout.alerting.models import DegradedEpisode
from lookout.core.regions import region_queue
from lookout.monitors.models import ProbeResult, RegionWorker

# A worker heartbeats every ~15 s (home) or with each batch of results (elsewhere): a minute is four misses.
WORKER_SEEN_SECONDS = 60


@dataclass(frozen=True)
class RegionCounts:
    results: int = 0
    failures: int = 0

    @property
    def failure_percent(self) -> float | None:
        return round(self.failures * 100 / self.results, 2) if self.results else None


def region_counts(*, since: datetime) -> dict[str, RegionCounts]:
    """Results and failures per region checked at or after `since`: one grouped query on the checked_at index.
    Results stored before regions existed (region "") are the home region's; names no longer configured are left
    out."""
    rows = (ProbeResult.objects.filter(checked_at__gte=since)
            .annotate(name=Coalesce(NullIf("region", Value("")), Value(settings.LOOKOUT_HOME_REGION)))
            .order_by().values("name")
            .annotate(results=Count("id"), failures=Count("id", filter=Q(success=False))))
    return {row["name"]: RegionCounts(results=row["results"], failures=row["failures"])
            for row in rows if row["name"] in settings.LOOKOUT_REGIONS}


def region_window_counts(*, now: datetime) -> dict[str, RegionCounts]:
    return region_counts(since=now - timedelta(seconds=settings.LOOKOUT_REGION_WINDOW_SECONDS))


def region_workers_seen(*, now: datetime) -> list[RegionWorker]:
    """The workers and agents seen within the last minute, by region and name (the last_seen index)."""
    return list(RegionWorker.objects.filter(last_seen__gte=now - timedelta(seconds=WORKER_SEEN_SECONDS))
                .order_by("region", "worker"))


def region_suspect_since() -> dict[str, datetime]:
    """The suspect regions and since when (their open episodes)."""
    return dict(DegradedEpisode.objects.filter(ended_at__isnull=True).exclude(region="")
                .values_list("region", "started_at"))


def region_list(*, now: datetime | None = None) -> list[dict[str, Any]]:
    """Every configured region, home first: its queue, the workers seen in the last minute and what they run, its
    results and failures over the window, and whether it is suspect. Three queries, however many regions."""
    now = now or timezone.now()
    counts = region_window_counts(now=now)
    workers: dict[str, list[RegionWorker]] = {}
    for worker in region_workers_seen(now=now):
        workers.setdefault(worker.region, []).append(worker)
    suspects = region_suspect_since()
    regions = []
    for name in settings.LOOKOUT_REGIONS:
        seen = workers.get(name, [])
        tally = counts.get(name, RegionCounts())
        regions.append({
            "name": name, "home": name == settings.LOOKOUT_HOME_REGION, "queue": region_queue(name),
            "workers": len(seen), "workers_seen": seen, "in_flight": sum(worker.in_flight for worker in seen),
            "window_seconds": settings.LOOKOUT_REGION_WINDOW_SECONDS, "results": tally.results,
            "failures": tally.failures, "failure_percent": tally.failure_percent,
            "suspect": name in suspects, "suspect_since": suspects.get(name),
        })
    return regions


def region_gauges(*, now: datetime | None = None) -> dict[str, tuple[bool, int]]:
    """(suspect, workers seen in the last minute) per configured region, for the fleet's metrics: two queries."""
    now = now or timezone.now()
    workers = dict(RegionWorker.objects.filter(last_seen__gte=now - timedelta(seconds=WORKER_SEEN_SECONDS))
                   .order_by().values("region").annotate(seen=Count("id")).values_list("region", "seen"))
    suspects = region_suspect_since()
    return {name: (name in suspects, workers.get(name, 0)) for name in settings.LOOKOUT_REGIONS}
