"""What the regions endpoint, the suspect sweep and the metrics read of the regions: results per region over the
window, and the workers seen recently."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, Q, Value
from django.db.models.functions import Coalesce, NullIf

from lookout.alerting.models import DegradedEpisode
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
