"""Each region's latest result per monitor (MonitorRegion): what the monitor's detail, the per-region metrics and
the Monitor dashboard show. Kept for monitors that name their regions; a monitor of the home region alone has
its latest result on the monitor itself."""

from collections.abc import Iterable
from typing import TYPE_CHECKING

from django.conf import settings

from lookout.monitors.models import Monitor, MonitorRegion, RegionStatus

if TYPE_CHECKING:
    from lookout.probes.results import ProbeRecord  # recording calls in here, not the other way round


def region_states_record(*, pairs: Iterable[tuple[Monitor, "ProbeRecord"]]) -> None:
    """Upsert the newest result per monitor and region among these (the caller holds the monitors' row locks)."""
    newest: dict[tuple[int, str], ProbeRecord] = {}
    for monitor, record in pairs:
        if not monitor.regions:
            continue
        key = (monitor.pk, record.region or settings.LOOKOUT_HOME_REGION)
        if key not in newest or newest[key].checked_at < record.checked_at:
            newest[key] = record
    if not newest:
        return
    MonitorRegion.objects.bulk_create(
        [MonitorRegion(monitor_id=monitor_id, region=region,
                       status=RegionStatus.UP if record.success else RegionStatus.DOWN,
                       checked_at=record.checked_at, response_time_ms=record.response_time_ms,
                       error=record.error[:500]) for (monitor_id, region), record in sorted(newest.items())],
        update_conflicts=True, unique_fields=["monitor", "region"],
        update_fields=["status", "checked_at", "response_time_ms", "error"])
