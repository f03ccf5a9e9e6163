"""Channel services: create, change, delete, test."""

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from lookout.alerting.delivery import channel_send, message_for, notification_claim, notification_settle
from lookout.alerting.models import AlertEvent, Channel, Notification, NotificationState
from lookout.alerting.notifications import link
from lookout.core.encryption import secret_encrypt

# Changing where a channel points (or its secret) is the fix for a failing one: it gets alerts again.
_TARGET_FIELDS = {"address", "url", "secret"}


def _stored(fields: dict[str, Any]) -> dict[str, Any]:
    stored = dict(fields)
    if "secret" in stored:
        stored["secret"] = secret_encrypt(stored["secret"] or "")
    return stored


def channel_create(*, owner: AbstractBaseUser, **fields: Any) -> Channel:
    return Channel.objects.create(owner=owner, **_stored(fields))


@transaction.atomic
def channel_update(*, channel: Channel, changes: dict[str, Any]) -> Channel:
    locked = Channel.objects.select_for_update().get(pk=channel.pk)
    changes = _stored(changes)
    if _TARGET_FIELDS & changes.keys():
        changes.update(failing_since=None, failing_reason="")
    for name, value in changes.items():
        setattr(locked, name, value)
    locked.save(update_fields=[*changes, "updated_at"])
    return locked


def channel_delete(*, channel: Channel) -> None:
    channel.delete()


def channel_test(*, channel: Channel) -> Notification:
    """Send a test message now, record it like any delivery (one attempt, never retried), return the row."""
    now = timezone.now()
    notification = Notification.objects.create(
        channel=channel, event=AlertEvent.TEST, due_at=now, dispatched_at=now,
        payload={"event": AlertEvent.TEST, "occurred_at": now.isoformat(),
                 "channel": {"id": channel.pk, "name": channel.name, "kind": channel.kind},
                 "message": "This is a test message from Lookout: this channel works.",
                 "link": link(f"/api/v1/channels/{channel.pk}/")},
    )
    claim = notification_claim(notification_id=notification.pk, now=now)
    assert claim is not None  # a row created a moment ago, due now, that nothing else publishes
    state = notification_settle(claim=claim, result=channel_send(channel, message_for(claim.notification)))
    if state == NotificationState.PENDING:  # a test is one attempt: the answer is what the user asked for
        Notification.objects.filter(pk=notification.pk, state=NotificationState.PENDING).update(
            state=NotificationState.FAILED)
    return Notification.objects.select_related("channel").prefetch_related("attempt_log").get(pk=notification.pk)
