"""Delivering notifications: claim with a conditional update and a lease, send, settle; retry from the database.

- claim: `pending and due` or `sending with an expired lease` -> `sending` with a fresh lease and claim token,
  in one UPDATE, so of two workers (a redelivered message, a sweep's duplicate) exactly one proceeds;
- send: no database connection is held while waiting on the network;
- settle: only the claim's holder may move the row on (delivered, back to pending with backoff, failed).
Retry countdowns live in `due_at`, not in broker messages (RabbitMQ's consumer_timeout would close a channel
holding a message for long): the alert sweep publishes rows as they fall due, and rows whose worker died
mid-delivery once their lease expires. At least once: a worker that dies after sending but before settling
leads to a second send, with the same event id.
"""

import logging
import random
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from lookout.alerting.channels import Message, SendResult, TransportError, transport_for
from lookout.alerting.models import (
    AttemptOutcome,
    Channel,
    Notification,
    NotificationAttempt,
    NotificationState,
)
from lookout.alerting.notifications import notifications_publish
from lookout.observability.metrics import alert_delivery_observe

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Claim:
    notification: Notification
    attempt: NotificationAttempt
    token: uuid.UUID


def retry_delay(attempts: int) -> float:
    """Exponential backoff with ±10 % jitter (so alerts failing together do not retry together), capped."""
    delay: float = settings.LOOKOUT_ALERT_RETRY_BASE_SECONDS * 2 ** max(attempts - 1, 0) * random.uniform(0.9, 1.1)
    return min(delay, settings.LOOKOUT_ALERT_RETRY_MAX_SECONDS)


def notification_claim(*, notification_id: int, now: datetime | None = None) -> Claim | None:
    """Take the row for one attempt, or None if it is not due, already delivered, or someone else holds it."""
    now = now or timezone.now()
    token = uuid.uuid4()
    claimable = (Q(state=NotificationState.PENDING, due_at__lte=now)
                 | Q(state=NotificationState.SENDING, lease_until__lt=now))
    claimed = Notification.objects.filter(claimable, pk=notification_id).update(
        state=NotificationState.SENDING, claim=token,
        lease_until=now + timedelta(seconds=settings.LOOKOUT_ALERT_LEASE_SECONDS),
        attempts=F("attempts") + 1, dispatched_at=None,
    )
    if not claimed:
        return None
    notification = Notification.objects.select_related("channel").get(pk=notification_id)
    # An attempt left unfinished was the previous holder's: its worker died (or lost its lease) mid-send.
    if NotificationAttempt.objects.filter(notification=notification, finished_at__isnull=True).update(
            finished_at=now, outcome=AttemptOutcome.ABANDONED,
            error="the worker stopped before finishing; lease expired"):
        alert_delivery_observe(channel_kind=notification.channel.kind, outcome=AttemptOutcome.ABANDONED)
    attempt = NotificationAttempt.objects.create(notification=notification, number=notification.attempts,
                                                 started_at=now)
    return Claim(notification=notification, attempt=attempt, token=token)


def message_for(notification: Notification) -> Message:
    return Message(event=notification.event, event_id=str(notification.event_id), payload=notification.payload)


def channel_send(channel: Channel, message: Message) -> SendResult:
    """Send with the channel's transport; never raises for what a receiver or the network does."""
    started = time.monotonic()
    try:
        status_code = transport_for(channel.kind).send(channel, message)
    except TransportError as exc:
        outcome = AttemptOutcome.PERMANENT if exc.permanent else AttemptOutcome.TRANSIENT
        return SendResult(outcome=outcome, status_code=exc.status_code, error=str(exc)[:1000],
                          duration_ms=(time.monotonic() - started) * 1000)
    except Exception as exc:  # a bug or an unreadable secret: recorded and retried, never a row stuck in sending
        logger.exception("sending to %s channel %s failed unexpectedly", channel.kind, channel.pk)
        return SendResult(outcome=AttemptOutcome.TRANSIENT, status_code=None,
                          error=f"unexpected error: {type(exc).__name__}: {exc}"[:1000],
                          duration_ms=(time.monotonic() - started) * 1000)
    return SendResult(outcome=AttemptOutcome.DELIVERED, status_code=status_code, error="",
                      duration_ms=(time.monotonic() - started) * 1000)


def notification_settle(*, claim: Claim, result: SendResult, now: datetime | None = None) -> str:
    """Record the attempt and move the row on, if the claim still holds it. Returns the row's state after."""
    now = now or timezone.now()
    notification = claim.notification
    NotificationAttempt.objects.filter(pk=claim.attempt.pk).update(
        finished_at=now, outcome=result.outcome, status_code=result.status_code, error=result.error,
        duration_ms=result.duration_ms)
    alert_delivery_observe(channel_kind=notification.channel.kind, outcome=result.outcome)
    held = Notification.objects.filter(pk=notification.pk, claim=claim.token, state=NotificationState.SENDING)
    if result.outcome == AttemptOutcome.DELIVERED:
        if held.update(state=NotificationState.DELIVERED, delivered_at=now, lease_until=None, last_error=""):
            Channel.objects.filter(pk=notification.channel_id, failing_since__isnull=False).update(
                failing_since=None, failing_reason="")
            return NotificationState.DELIVERED
    elif result.outcome == AttemptOutcome.PERMANENT or notification.attempts >= settings.LOOKOUT_ALERT_MAX_ATTEMPTS:
        with transaction.atomic():
            if held.update(state=NotificationState.FAILED, lease_until=None, last_error=result.error):
                reason = result.error if result.outcome == AttemptOutcome.PERMANENT else (
                    f"gave up after {notification.attempts} attempts: {result.error}")
                channel_mark_failing(channel_id=notification.channel_id, reason=reason, now=now)
                return NotificationState.FAILED
    elif held.update(state=NotificationState.PENDING, lease_until=None, last_error=result.error,
                     due_at=now + timedelta(seconds=retry_delay(notification.attempts))):
        return NotificationState.PENDING
    # The lease ran out meanwhile and another worker holds (or finished) the row: it is theirs to settle.
    return Notification.objects.values_list("state", flat=True).get(pk=notification.pk)


def channel_mark_failing(*, channel_id: int, reason: str, now: datetime) -> None:
    # The first failure's time stays: "failing since".
    Channel.objects.filter(pk=channel_id, failing_since__isnull=True).update(failing_since=now)
    Channel.objects.filter(pk=channel_id).update(failing_reason=reason[:500])


def notification_deliver(*, notification_id: int) -> str | None:
    """One delivery attempt, if the row can be claimed. Returns the row's state afterwards, or None."""
    claim = notification_claim(notification_id=notification_id)
    if claim is None:
        return None
    if not connection.in_atomic_block:
        # Deliveries wait on receivers: do not hold one of the pool's connections meanwhile.
        connection.close()
    result = channel_send(claim.notification.channel, message_for(claim.notification))
    return notification_settle(claim=claim, result=result)


def notifications_dispatch(*, now: datetime | None = None, batch: int = 1000) -> int:
    """Publish deliveries that are due and were not published recently, and those whose lease expired."""
    now = now or timezone.now()
    quiet_since = now - timedelta(seconds=settings.LOOKOUT_ALERT_LEASE_SECONDS)
    not_recently = Q(dispatched_at__isnull=True) | Q(dispatched_at__lt=quiet_since)
    due = (Notification.objects.filter(not_recently)
           .filter(Q(state=NotificationState.PENDING, due_at__lte=now)
                   | Q(state=NotificationState.SENDING, lease_until__lt=now))
           .order_by("due_at").values_list("pk", flat=True)[:batch])
    ids = list(due)
    if not ids:
        return 0
    Notification.objects.filter(pk__in=ids).filter(not_recently).update(dispatched_at=now)
    return notifications_publish(ids)
