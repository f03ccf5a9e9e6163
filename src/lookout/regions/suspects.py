"""Suspect regions: a region whose failures across all its monitors stand far above the other regions' is more
likely broken itself than every target it probes. Its votes are not counted while the episode lasts.

Over the last LOOKOUT_REGION_WINDOW_SECONDS a region is suspect when it has LOOKOUT_REGION_SUSPECT_MIN_RESULTS
results at least, LOOKOUT_REGION_SUSPECT_MIN_PERCENT of them failed, and its share is
LOOKOUT_REGION_SUSPECT_MARGIN_PERCENT points above the highest share of any other region with as many results.
With no such other region nothing is suspect: a region that fails alone cannot be told from a world that does.

An episode is a DegradedEpisode with the region's name (the mass-failure guard's own are those with none): the
unique open episode per region makes the one `lookout.region.suspect` alert, and the conditional end the one
`lookout.region.recovered`, happen once however many sweeps run at the same time. Its votes stay uncounted while
its results are still stored, so the same figures tell when it is fine again.
"""

from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from lookout.alerting.models import AlertEvent, DegradedEpisode
from lookout.alerting.notifications import episode_notify
from lookout.regions.selectors import RegionCounts, region_window_counts

SUSPECT = "suspect"
RECOVERED = "recovered"


def suspect_regions() -> frozenset[str]:
    """The regions suspect now (an open episode each)."""
    return frozenset(DegradedEpisode.objects.filter(ended_at__isnull=True).exclude(region="")
                     .values_list("region", flat=True))


def _comparable(counts: RegionCounts) -> bool:
    return counts.results >= settings.LOOKOUT_REGION_SUSPECT_MIN_RESULTS


def _others_percent(region: str, counts: dict[str, RegionCounts]) -> float | None:
    """The highest failure share among the other regions with enough results (None: no region to compare with)."""
    shares = [other.failures * 100 / other.results for name, other in counts.items()
              if name != region and _comparable(other)]
    return max(shares) if shares else None


def suspects_decide(counts: dict[str, RegionCounts]) -> frozenset[str]:
    """The regions these figures make suspect."""
    suspects = set()
    for region, mine in counts.items():
        if not _comparable(mine):
            continue
        share = mine.failures * 100 / mine.results
        others = _others_percent(region, counts)
        if others is not None and share >= settings.LOOKOUT_REGION_SUSPECT_MIN_PERCENT and \
                share >= others + settings.LOOKOUT_REGION_SUSPECT_MARGIN_PERCENT:
            suspects.add(region)
    return frozenset(suspects)


def regions_suspect_sweep(*, now: datetime | None = None) -> dict[str, str]:
    """Open an episode for each region that became suspect and end those of regions that no longer are; returns
    {region: "suspect" | "recovered"} for what this sweep changed."""
    now = now or timezone.now()
    counts = region_window_counts(now=now)
    suspects = suspects_decide(counts)
    open_episodes = {episode.region: episode
                     for episode in DegradedEpisode.objects.filter(ended_at__isnull=True).exclude(region="")}
    changed: dict[str, str] = {}
    for region in sorted(suspects - open_episodes.keys()):
        with transaction.atomic():
            if _episode_open(region=region, now=now, figures=_figures(region, counts)):
                changed[region] = SUSPECT
    for region, episode in sorted(open_episodes.items()):
        if region not in suspects:
            with transaction.atomic():
                if _episode_end(episode, now=now, figures=_figures(region, counts)):
                    changed[region] = RECOVERED
    return changed


def _figures(region: str, counts: dict[str, RegionCounts]) -> dict[str, Any]:
    mine = counts.get(region, RegionCounts())
    others = _others_percent(region, counts)
    return {"results": mine.results, "failures": mine.failures, "failure_percent": mine.failure_percent,
            "others_percent": round(others, 2) if others is not None else None,
            "window_seconds": settings.LOOKOUT_REGION_WINDOW_SECONDS}


def _episode_open(*, region: str, now: datetime, figures: dict[str, Any]) -> DegradedEpisode | None:
    try:
        # A savepoint: losing the race to another sweep opening it must not abort the caller's transaction.
        with transaction.atomic():
            episode = DegradedEpisode.objects.create(region=region, started_at=now, failing=figures["failures"],
                                                     probed=figures["results"])
    except IntegrityError:  # the region's unique open episode exists: another sweep opened it (and alerted)
        return None
    episode_notify(episode=episode, event=AlertEvent.REGION_SUSPECT, extra=figures)
    return episode


def _episode_end(episode: DegradedEpisode, *, now: datetime, figures: dict[str, Any]) -> bool:
    if not DegradedEpisode.objects.filter(pk=episode.pk, ended_at__isnull=True).update(ended_at=now):
        return False  # another sweep ended it (and alerted)
    episode.ended_at = now
    episode_notify(episode=episode, event=AlertEvent.REGION_RECOVERED, extra=figures)
    return True
