"""Read queries for alerting, always scoped to their owner."""

from django.contrib.auth.models import User
from django.db.models import QuerySet

from lookout.alerting.models import Channel, Incident, Notification


def channel_list(*, owner: User) -> QuerySet[Channel]:
    return Channel.objects.filter(owner=owner).order_by("id")


def incident_list(*, owner: User, monitor_id: int | None = None,
                  open: bool | None = None) -> QuerySet[Incident]:
    incidents = Incident.objects.filter(monitor__owner=owner)
    if monitor_id is not None:
        incidents = incidents.filter(monitor_id=monitor_id)
    if open is not None:
        incidents = incidents.filter(ended_at__isnull=open)
    return incidents.order_by("-started_at", "-id")


def notification_list(*, owner: User, monitor_id: int | None = None, incident_id: int | None = None,
                      channel_id: int | None = None, event: str | None = None,
                      state: str | None = None) -> QuerySet[Notification]:
    notifications = Notification.objects.filter(channel__owner=owner)
    for name, value in (("monitor_id", monitor_id), ("incident_id", incident_id), ("channel_id", channel_id),
                        ("event", event), ("state", state)):
        if value is not None:
            notifications = notifications.filter(**{name: value})
    return notifications.prefetch_related("attempt_log").order_by("-created_at", "-id")
