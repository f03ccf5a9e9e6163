"""Suspect regions: a region whose failures across all its monitors stand far above the other regions' is more
likely broken itself than every target it probes. Its votes are not counted while the episode lasts."""

from lookout.alerting.models import DegradedEpisode


def suspect_regions() -> frozenset[str]:
    """The regions suspect now (an open episode each)."""
    return frozenset(DegradedEpisode.objects.filter(ended_at__isnull=True).exclude(region="")
                     .values_list("region", flat=True))
