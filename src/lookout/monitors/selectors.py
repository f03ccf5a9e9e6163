"""Read queries for monitors, results and issued tasks, always scoped to their owner."""

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.utils import timezone

from lookout.monitors.models import IssuedTask, Monitor, MonitorEvent, MonitorRegion, OwnerMonitorCount, ProbeResult
from lookout.monitors.rules import monitor_regions

# A cron monitor has no interval: its region results are stale after this many seconds (and its timeout).
CRON_REGION_STALE_SECONDS = 60
UNKNOWN = "unknown"


def monitor_list(*, owner: User) -> QuerySet[Monitor]:
    return Monitor.objects.filter(owner=owner).order_by("id")


def monitor_relations_load(monitors: Sequence[Monitor]) -> None:
    """Fill each monitor's channel_ids and region_state_list (what its representation reads) in two queries for
    all of them: prefetch_related's related manager per monitor cost ~0.25 ms a monitor, most of a list page's
    reading."""
    channel_ids: dict[int, list[int]] = defaultdict(list)
    through = Monitor.channels.through.objects
    for monitor_id, channel_id in through.filter(monitor_id__in=[monitor.pk for monitor in monitors]).order_by(
            "channel_id").values_list("monitor_id", "channel_id"):
        channel_ids[monitor_id].append(channel_id)
    states: dict[int, list[MonitorRegion]] = defaultdict(list)
    with_regions = [monitor.pk for monitor in monitors if monitor.regions]
    if with_regions:
        for state in MonitorRegion.objects.filter(monitor_id__in=with_regions):
            states[state.monitor_id].append(state)
    for monitor in monitors:
        # What the cached properties would read, one monitor at a time.
        monitor.__dict__["channel_ids"] = channel_ids[monitor.pk]
        monitor.__dict__["region_state_list"] = states[monitor.pk]


def monitor_count(*, owner: User) -> int:
    """How many monitors the owner has, as the services keep it (one row by key, not a count of the rows)."""
    counted = OwnerMonitorCount.objects.filter(owner=owner).values_list("monitors", flat=True).first()
    return counted or 0


# What the lean list shows of each monitor: plain columns, nothing decrypted, joined or prefetched.
SUMMARY_FIELDS = ("id", "name", "type", "url", "interval", "cron", "regions", "enabled", "status",
                  "last_checked_at", "last_response_time_ms", "created_at", "updated_at")


def monitor_summaries(*, owner: User) -> QuerySet[Monitor, dict[str, Any]]:
    """The owner's monitors as SUMMARY_FIELDS rows (dicts), by id: a page is one index range scan."""
    rows: QuerySet[Monitor, dict[str, Any]] = Monitor.objects.filter(owner=owner).order_by("id").values(
        *SUMMARY_FIELDS)
    return rows


def region_stale_after(*, interval: int | None, timeout: float) -> timedelta:
    """How old a region's latest result may be and still say up or down: two runs missed, and one's timeout."""
    return timedelta(seconds=2 * (interval or CRON_REGION_STALE_SECONDS) + timeout)


def monitor_regions_status(monitor: Monitor, *, now: datetime | None = None) -> list[dict[str, Any]]:
    """Each of the monitor's regions' latest result, in the monitor's order: up or down, or unknown when the region
    has none or none within two intervals (and a timeout) of now. [] for a monitor that names no regions: its
    latest result is on the monitor. Reads region_state_list (loaded for a page by monitor_relations_load)."""
    if not monitor.regions:
        return []
    now = now or timezone.now()
    stale = region_stale_after(interval=monitor.interval, timeout=monitor.timeout)
    states = {state.region: state for state in monitor.region_state_list}
    answer: list[dict[str, Any]] = []
    for region in monitor_regions(monitor):
        state = states.get(region)
        if state is None:
            answer.append({"region": region, "status": UNKNOWN, "checked_at": None, "response_time_ms": None,
                           "error": ""})
            continue
        answer.append({"region": region, "status": state.status if now - state.checked_at <= stale else UNKNOWN,
                       "checked_at": state.checked_at, "response_time_ms": state.response_time_ms,
                       "error": state.error})
    return answer


def monitor_get(*, owner: User, monitor_id: int) -> Monitor | None:
    """One of the owner's monitors, without what only its representation needs (its channels)."""
    return Monitor.objects.filter(owner=owner, pk=monitor_id).first()


def result_list(*, owner: User, monitor_id: int | None = None, success: bool | None = None,
                since: datetime | None = None, region: str | None = None) -> QuerySet[ProbeResult]:
    results = ProbeResult.objects.filter(monitor__owner=owner)
    if region is not None:
        # Results stored before regions existed carry no region: they are the home region's.
        results = results.filter(region__in=[region, ""] if region == settings.LOOKOUT_HOME_REGION else [region])
    if monitor_id is not None:
        results = results.filter(monitor_id=monitor_id)
    if success is not None:
        results = results.filter(success=success)
    if since is not None:
        results = results.filter(checked_at__gte=since)
    return results.order_by("-checked_at", "-id")


def issued_task_get(*, owner: User, task_id: str) -> IssuedTask | None:
    return IssuedTask.objects.filter(owner=owner, task_id=task_id).first()


def monitors_for_probe(*, monitor_ids: list[int], fields: Iterable[str]) -> dict[int, Monitor]:
    """The monitors to probe, by id, with the fields a probe reads (a worker reads many in one query)."""
    return Monitor.objects.only(*fields).in_bulk(monitor_ids)


def event_list(*, owner: User, monitor_id: int | None = None) -> QuerySet[MonitorEvent]:
    events = MonitorEvent.objects.filter(monitor__owner=owner)
    if monitor_id is not None:
        events = events.filter(monitor_id=monitor_id)
    return events.order_by("-created_at", "-id")
