"""Channel services: create, change, delete, test. Every rule a channel obeys is checked here, whoever calls."""

from dataclasses import dataclass, fields, replace
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import EmailValidator
from django.db import transaction
from django.utils import timezone

from lookout.alerting.delivery import channel_send, message_for, notification_claim, notification_settle
from lookout.alerting.models import AlertEvent, Channel, ChannelKind, Notification, NotificationState
from lookout.alerting.notifications import link
from lookout.core.encryption import secret_encrypt
from lookout.core.errors import ValidationFailed
from lookout.core.target_policy import target_url_check
from lookout.monitors.models import MonitorType

# Changing where a channel points (or its secret) is the fix for a failing one: it gets alerts again.
_TARGET_FIELDS = {"address", "url", "secret"}
MAX_LENGTHS = {"name": 200, "address": 254, "url": 2048, "secret": 256}
_email = EmailValidator()


@dataclass(frozen=True, kw_only=True)
class ChannelSpec:
    name: str
    kind: str
    address: str = ""  # email
    url: str = ""  # webhook, slack
    secret: str | None = None  # webhook: signs the body; write-only, stored encrypted. None: unchanged
    is_default: bool = False
    system_events: bool = False  # staff only


def channel_spec(channel: Channel) -> ChannelSpec:
    """The channel as it stands: change it with dataclasses.replace and pass it to channel_update."""
    return ChannelSpec(**{spec_field.name: getattr(channel, spec_field.name) for spec_field in fields(ChannelSpec)
                          if spec_field.name != "secret"})


def _channel_validate(spec: ChannelSpec, *, owner: User, current: Channel | None) -> None:
    errors: dict[str, list[str]] = {}

    def add(name: str, message: str) -> None:
        errors.setdefault(name, []).append(message)

    for name, limit in MAX_LENGTHS.items():
        value = getattr(spec, name)
        if value is not None and len(value) > limit:
            add(name, f"Ensure this field has no more than {limit} characters.")
    if not spec.name:
        add("name", "This field may not be blank.")
    if spec.kind not in ChannelKind.values:
        add("kind", f'"{spec.kind}" is not a valid choice.')
    elif current is not None and spec.kind != current.kind:
        add("kind", "The kind of a channel cannot change; create a new one.")
    elif spec.kind == ChannelKind.EMAIL:
        try:
            _email(spec.address)
        except DjangoValidationError:
            add("address", "Enter a valid email address.")
        if spec.url:
            add("url", "An email channel has an address, not a url.")
    else:
        if current is None or spec.url != current.url:
            try:
                target_url_check(MonitorType.HTTP, spec.url)
            except ValueError as exc:
                add("url", str(exc))
        if spec.address:
            add("address", f"A {spec.kind} channel has a url, not an address.")
    if spec.secret and spec.kind != ChannelKind.WEBHOOK:
        add("secret", "Only webhook channels sign their messages.")
    if spec.system_events and not getattr(owner, "is_staff", False) and not (current and current.system_events):
        add("system_events", "Only staff users' channels receive installation events.")
    if errors:
        raise ValidationFailed(errors)


def channel_create(*, owner: User, spec: ChannelSpec) -> Channel:
    """Create a channel; ValidationFailed changes nothing."""
    _channel_validate(spec, owner=owner, current=None)
    return Channel.objects.create(owner=owner, **{**vars(replace(spec, secret=None)),
                                                  "secret": secret_encrypt(spec.secret or "")})


@transaction.atomic
def channel_update(*, channel: Channel, spec: ChannelSpec) -> Channel:
    """Make the channel what `spec` says (start from channel_spec(channel)); ValidationFailed changes nothing."""
    locked = Channel.objects.select_for_update().select_related("owner").get(pk=channel.pk)
    _channel_validate(spec, owner=locked.owner, current=locked)
    current = channel_spec(locked)
    changes: dict[str, Any] = {spec_field.name: getattr(spec, spec_field.name) for spec_field in fields(ChannelSpec)
                               if spec_field.name != "secret"
                               and getattr(spec, spec_field.name) != getattr(current, spec_field.name)}
    if spec.secret is not None:
        changes["secret"] = secret_encrypt(spec.secret)
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
