"""Helpers for alerting tests: monitors with channels, and results recorded through the real service."""

import uuid
from datetime import UTC, datetime, timedelta

from lookout.alerting.models import Channel
from lookout.alerting.services import ChannelSpec, channel_create
from lookout.monitors import services
from lookout.monitors.models import Monitor, ProbeResult
from lookout.monitors.spec import MonitorSpec
from lookout.probes import results
from lookout.probes.results import ProbeRecord

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def monitor_for(owner, *, channels: list[Channel] = (), **fields) -> Monitor:
    return services.monitor_create(owner=owner, spec=MonitorSpec(**{
        "name": "shop", "url": "https://shop.example/health", "interval": 60,
        "channels": [channel.pk for channel in channels], **fields}))


def staff_webhook_channel(user_model) -> Channel:
    """A staff user's webhook channel receiving installation events (to a closed port: its deliveries fail)."""
    ops = user_model.objects.create_user(username="ops", is_staff=True)
    return channel_create(owner=ops, spec=ChannelSpec(name="ops", kind="webhook", url="http://127.0.0.1:9/ops",
                                                      system_events=True))


def webhook_channel(owner, url: str, **fields) -> Channel:
    return channel_create(owner=owner, spec=ChannelSpec(**{"name": "hook", "kind": "webhook", "url": url, **fields}))


def record(monitor: Monitor, *, at: datetime, success: bool, status_code: int | None = None,
           elapsed_ms: float = 20.0) -> ProbeResult:
    code = status_code if status_code is not None else (200 if success else 503)
    result = results.probe_result_record(monitor_id=monitor.pk, record=ProbeRecord(
        checked_at=at, success=success, status_code=code, response_time_ms=elapsed_ms,
        error="" if success else f"HTTP {code}", task_id=f"t-{uuid.uuid4()}"))
    assert result is not None
    return result


def run(monitor: Monitor, pattern: str, *, start: datetime = T0, step: timedelta = timedelta(seconds=60)) -> datetime:
    """Record results "U" (up) / "D" (down) in order, one per step; returns the time after the last."""
    at = start
    for char in pattern:
        record(monitor, at=at, success=char == "U")
        at += step
    return at
