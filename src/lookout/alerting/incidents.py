"""Incidents: opened when a monitor is confirmed down, closed when it is confirmed up, with their alerts."""

from datetime import datetime

from django.utils import timezone

from lookout.alerting.guard import guard_holds
from lookout.alerting.models import AlertEvent, Incident, Notification, NotificationState
from lookout.alerting.notifications import incident_notify
from lookout.monitors.models import Monitor


def incident_open(*, monitor: Monitor, started_at: datetime, detected_at: datetime, cause: str,
                  in_maintenance: bool, regions: list[str] | None = None, regions_total: int = 0) -> Incident:
    """Open the monitor's incident; its down alert goes out now, or at the end of the maintenance window.

    `regions`: for a monitor of several regions, those whose failures confirmed it, of `regions_total` counted.
    """
    incident = Incident.objects.create(monitor=monitor, started_at=started_at, detected_at=detected_at,
                                       cause=cause[:2000], alerts_deferred=in_maintenance, regions=regions or [],
                                       regions_total=regions_total)
    if not in_maintenance:
        incident_notify(incident=incident, event=AlertEvent.MONITOR_DOWN, held=guard_holds())
    return incident


def incident_close(*, monitor: Monitor, ended_at: datetime) -> Incident | None:
    """Close the monitor's open incident; the channels told it was down are told it is up."""
    incident = Incident.objects.filter(monitor=monitor, ended_at__isnull=True).first()
    if incident is None:  # e.g. it was down before incidents existed
        return None
    incident.ended_at = ended_at
    incident.save(update_fields=["ended_at"])
    downs = Notification.objects.filter(incident=incident, event=AlertEvent.MONITOR_DOWN)
    # Held by the mass-failure guard and already over: the blip was most likely Lookout's own, say nothing.
    downs.filter(state=NotificationState.HELD).update(
        state=NotificationState.DROPPED, last_error="recovered while the mass-failure guard held the alert")
    told = list(downs.exclude(state__in=[NotificationState.HELD, NotificationState.DROPPED])
                .values_list("channel_id", flat=True))
    if told:
        incident_notify(incident=incident, event=AlertEvent.MONITOR_UP, channel_ids=told)
    return incident


def incident_deferred_release(*, incident: Incident) -> bool:
    """Send the down alert an incident opened inside a maintenance window held back, if it is still open.

    Conditional, so two sweeps never both send it.
    """
    claimed = Incident.objects.filter(pk=incident.pk, ended_at__isnull=True, alerts_deferred=True).update(
        alerts_deferred=False)
    if claimed:
        incident_notify(incident=incident, event=AlertEvent.MONITOR_DOWN, held=guard_holds())
    return bool(claimed)


def incident_duration_seconds(incident: Incident, *, now: datetime | None = None) -> float:
    end = incident.ended_at or now or timezone.now()
    return max(0.0, (end - incident.started_at).total_seconds())
