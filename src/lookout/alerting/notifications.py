"""Creating notifications: who is told about an event, with what payload, and handing them to delivery.

Rows are created in the caller's transaction (the one that changed the monitor's state), and delivery
tasks are published only once it commits, so a task never sees a row that was rolled back. A publish that
fails (broker down) loses nothing: the alert sweep publishes due rows again.
"""

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from lookout.alerting.models import (
    AlertEvent,
    Channel,
    DegradedEpisode,
    Incident,
    Notification,
    NotificationState,
)
from lookout.config.celery_app import app
from lookout.monitors.models import Monitor, MonitorEvent

logger = logging.getLogger(__name__)
DELIVER_TASK = "lookout.alerting.tasks.notification_deliver"


def link(path: str) -> str:
    return f"{settings.LOOKOUT_BASE_URL}{path}"


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def regions_confirmed(regions: list[str], total: int) -> str:
    """'down from eu-west and us-east, 2 of 3'."""
    named = regions[0] if len(regions) == 1 else f"{', '.join(regions[:-1])} and {regions[-1]}"
    return f"down from {named}, {len(regions)} of {total}"


def monitor_payload(monitor: Monitor) -> dict[str, Any]:
    return {"id": monitor.pk, "name": monitor.name, "type": monitor.type, "url": monitor.url}


def incident_payload(*, incident: Incident, event: str) -> dict[str, Any]:
    duration = (incident.ended_at - incident.started_at).total_seconds() if incident.ended_at else None
    return {
        "event": event,
        "occurred_at": _iso(incident.ended_at if event == AlertEvent.MONITOR_UP else incident.detected_at),
        "monitor": monitor_payload(incident.monitor),
        "incident": {"id": incident.pk, "started_at": _iso(incident.started_at),
                     "ended_at": _iso(incident.ended_at), "duration_seconds": duration, "cause": incident.cause,
                     **({"regions": incident.regions, "regions_total": incident.regions_total,
                         "confirmed": regions_confirmed(incident.regions, incident.regions_total)}
                        if incident.regions else {})},
        "link": link(f"/api/v1/incidents/{incident.pk}/"),
    }


def monitor_recipients(monitor: Monitor) -> list[Channel]:
    """The channels the monitor names and its owner's defaults, minus those marked failing."""
    return list(Channel.objects.filter(owner_id=monitor.owner_id, failing_since__isnull=True)
                .filter(Q(is_default=True) | Q(monitors=monitor)).distinct().order_by("id"))


def system_recipients() -> list[Channel]:
    return list(Channel.objects.filter(system_events=True, owner__is_staff=True, owner__is_active=True,
                                       failing_since__isnull=True).order_by("id"))


def incident_notify(*, incident: Incident, event: str, held: bool = False,
                    channel_ids: Iterable[int] | None = None) -> list[Notification]:
    """One notification per channel for an incident's event (held ones wait for the mass-failure guard)."""
    if channel_ids is None:
        channels = monitor_recipients(incident.monitor)
    else:
        channels = list(Channel.objects.filter(pk__in=list(channel_ids), failing_since__isnull=True).order_by("id"))
    return _create(channels, event=event, payload=incident_payload(incident=incident, event=event), held=held,
                   monitor=incident.monitor, incident=incident)


def event_notify(*, event: MonitorEvent) -> list[Notification]:
    """Tell a monitor's channels about a once-only event such as tls.expiring."""
    monitor = event.monitor
    payload = {
        "event": event.kind,
        "occurred_at": _iso(event.created_at or timezone.now()),
        "monitor": monitor_payload(monitor),
        "certificate": event.data,
        "link": link(f"/api/v1/events/?monitor={monitor.pk}"),
    }
    return _create(monitor_recipients(monitor), event=event.kind, payload=payload, monitor=monitor,
                   monitor_event=event)


def episode_notify(*, episode: DegradedEpisode, event: str, extra: dict[str, Any] | None = None) -> list[Notification]:
    """Tell the staff's system channels that Lookout suspects itself or one region (or no longer does)."""
    ended = event in (AlertEvent.RECOVERED, AlertEvent.REGION_RECOVERED)
    payload = {
        "event": event,
        "occurred_at": _iso(episode.ended_at if ended else episode.started_at),
        "episode": {"id": episode.pk, "started_at": _iso(episode.started_at), "ended_at": _iso(episode.ended_at),
                    "failing": episode.failing, "probed": episode.probed,
                    **({"region": episode.region} if episode.region else {}), **(extra or {})},
        "link": link("/api/v1/regions/" if episode.region else "/api/v1/notifications/?event=lookout.degraded"),
    }
    return _create(system_recipients(), event=event, payload=payload, episode=episode)


def _create(channels: list[Channel], *, event: str, payload: dict[str, Any], held: bool = False,
            **links: Any) -> list[Notification]:
    if not channels:
        return []
    now = timezone.now()
    rows = Notification.objects.bulk_create([
        Notification(channel=channel, event=event, payload=payload, due_at=now,
                     state=NotificationState.HELD if held else NotificationState.PENDING,
                     dispatched_at=None if held else now, **links)
        for channel in channels
    ])
    if not held:
        notifications_publish_on_commit([row.pk for row in rows])
    return rows


def notifications_publish_on_commit(ids: list[int]) -> None:
    if ids:
        transaction.on_commit(lambda: notifications_publish(ids))


def notifications_publish(ids: Iterable[int]) -> int:
    """Publish one delivery task per notification; returns how many the broker took."""
    published = 0
    for notification_id in ids:
        try:
            # By name: the task module builds on this one (tasks -> delivery -> notifications).
            app.send_task(DELIVER_TASK, args=[notification_id], retry=False)
            published += 1
        except Exception:  # the broker is down: the sweep publishes it again once a lease has passed
            logger.warning("could not publish delivery of notification %s; the sweep will retry it",
                           notification_id, exc_info=True)
    return published
