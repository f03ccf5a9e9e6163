"""Delivery: claim with a lease, send, settle; retries from the database; permanent failures; every attempt."""

import threading
from datetime import timedelta

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from lookout.alerting.channels.webhook import webhook_body
from lookout.alerting.delivery import (
    message_for,
    notification_claim,
    notification_deliver,
    notification_settle,
    notifications_dispatch,
    retry_delay,
)
from lookout.alerting.models import AlertEvent, Channel, Incident, Notification
from lookout.alerting.services import ChannelSpec, channel_create
from support.alerting import T0, monitor_for, run, webhook_channel
from support.receivers import Answer

pytestmark = pytest.mark.django_db


@pytest.fixture
def down(alice, webhook):
    """A monitor gone down with one webhook channel: its down notification, not yet delivered."""
    hook = webhook_channel(alice, webhook.url, secret="s3cret")
    monitor = monitor_for(alice, channels=[hook], failure_threshold=1)
    run(monitor, "D")
    return Notification.objects.get(event=AlertEvent.MONITOR_DOWN)


def later(seconds: float):
    return timezone.now() + timedelta(seconds=seconds)


@pytest.fixture
def base_url(settings):
    settings.LOOKOUT_BASE_URL = "https://lookout.example.com"


def test_a_down_alert_reaches_the_webhook_signed_with_the_documented_payload(base_url, down, webhook):
    assert notification_deliver(notification_id=down.pk) == "delivered"

    [received] = webhook.received
    assert received.signature_valid("s3cret")
    assert received.headers["X-Lookout-Event"] == "monitor.down"
    assert received.headers["X-Lookout-Event-Id"] == str(down.event_id)
    body = received.json()
    incident = Incident.objects.get()
    assert body == {
        "event": "monitor.down", "event_id": str(down.event_id), "occurred_at": T0.isoformat(),
        "monitor": {"id": incident.monitor_id, "name": "shop", "type": "http", "url": "https://shop.example/health"},
        "incident": {"id": incident.pk, "started_at": T0.isoformat(), "ended_at": None, "duration_seconds": None,
                     "cause": "HTTP 503"},
        "link": f"https://lookout.example.com/api/v1/incidents/{incident.pk}/",
    }
    down.refresh_from_db()
    assert (down.state, down.attempts, down.lease_until) == ("delivered", 1, None)
    assert down.delivered_at is not None


def test_a_delivered_notification_is_never_sent_again(down, webhook):
    notification_deliver(notification_id=down.pk)

    assert notification_deliver(notification_id=down.pk) is None
    assert notifications_dispatch(now=later(3600)) == 0
    assert len(webhook.received) == 1


def test_500_twice_then_200_backs_off_in_the_database_and_delivers_exactly_once(down, webhook):
    webhook.answer(Answer(500), Answer(500))

    assert notification_deliver(notification_id=down.pk) == "pending"
    down.refresh_from_db()
    first_due = down.due_at
    assert first_due > timezone.now() + timedelta(seconds=5)  # base 10 s, jitter 10 %
    # Not due yet: neither a stray message nor the sweep gets it.
    assert notification_deliver(notification_id=down.pk) is None
    assert notifications_dispatch() == 0

    Notification.objects.filter(pk=down.pk).update(due_at=timezone.now())
    assert notification_deliver(notification_id=down.pk) == "pending"
    down.refresh_from_db()
    assert down.due_at - timezone.now() > timedelta(seconds=15)  # doubled
    Notification.objects.filter(pk=down.pk).update(due_at=timezone.now())
    assert notification_deliver(notification_id=down.pk) == "delivered"

    assert [r.headers["X-Lookout-Event-Id"] for r in webhook.received] == [str(down.event_id)] * 3
    assert len({r.body for r in webhook.received}) == 1  # the same body, so the same signature, every time
    attempts = list(down.attempt_log.values_list("number", "outcome", "status_code"))
    assert attempts == [(1, "transient", 500), (2, "transient", 500), (3, "delivered", 200)]


def test_backoff_is_exponential_and_capped(settings):
    settings.LOOKOUT_ALERT_RETRY_BASE_SECONDS, settings.LOOKOUT_ALERT_RETRY_MAX_SECONDS = 10, 100
    for attempts, expected in ((1, 10), (2, 20), (3, 40), (4, 80), (5, 100), (9, 100)):
        for _ in range(20):  # ±10 % jitter, never above the cap
            assert expected * 0.9 <= retry_delay(attempts) <= min(expected * 1.1, 100), attempts


def test_a_4xx_is_permanent_the_channel_is_marked_failing_and_gets_no_new_alerts(alice, down, webhook):
    webhook.answer(Answer(410))

    assert notification_deliver(notification_id=down.pk) == "failed"

    channel = Channel.objects.get(pk=down.channel_id)
    assert channel.failing_since is not None and "410" in channel.failing_reason
    assert notifications_dispatch(now=later(3600)) == 0
    # The next incident of a monitor naming it skips it.
    other = monitor_for(alice, channels=[channel], failure_threshold=1)
    run(other, "D")
    assert not Notification.objects.filter(monitor=other).exists()


@pytest.mark.parametrize("status", [429, 503, 408])
def test_429_408_and_5xx_are_retried(down, webhook, status):
    webhook.answer(Answer(status))
    assert notification_deliver(notification_id=down.pk) == "pending"
    assert Channel.objects.get(pk=down.channel_id).failing_since is None


def test_a_receiver_that_does_not_answer_in_time_is_retried(down, webhook, settings):
    settings.LOOKOUT_ALERT_TIMEOUT_SECONDS = 1
    webhook.answer(Answer(200, delay=3))

    assert notification_deliver(notification_id=down.pk) == "pending"

    attempt = down.attempt_log.get()
    assert attempt.outcome == "transient" and attempt.status_code is None
    assert attempt.duration_ms < 2500


def test_after_max_attempts_it_gives_up_and_marks_the_channel_failing(down, webhook, settings):
    settings.LOOKOUT_ALERT_MAX_ATTEMPTS = 2
    webhook.answer(default=Answer(502))

    assert notification_deliver(notification_id=down.pk) == "pending"
    Notification.objects.filter(pk=down.pk).update(due_at=timezone.now())
    assert notification_deliver(notification_id=down.pk) == "failed"

    assert "gave up after 2 attempts" in Channel.objects.get(pk=down.channel_id).failing_reason


def test_a_webhook_url_that_became_unsafe_is_refused_at_send_time_without_a_packet(down, webhook, settings):
    settings.LOOKOUT_ALLOW_PRIVATE_TARGETS = False  # the receiver's 127.0.0.1 is refused now

    assert notification_deliver(notification_id=down.pk) == "failed"

    assert webhook.received == []
    assert "loopback" in down.attempt_log.get().error


def test_only_one_of_two_concurrent_claims_wins(down):
    assert notification_claim(notification_id=down.pk) is not None
    assert notification_claim(notification_id=down.pk) is None


@pytest.mark.django_db(transaction=True)
def test_concurrent_workers_deliver_a_notification_once(alice, webhook):
    hook = webhook_channel(alice, webhook.url)
    run(monitor_for(alice, channels=[hook], failure_threshold=1), "D")
    notification = Notification.objects.get()
    barrier = threading.Barrier(8)
    outcomes = []

    def worker() -> None:
        try:
            barrier.wait()
            outcomes.append(notification_deliver(notification_id=notification.pk))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes, key=lambda outcome: outcome is None) == ["delivered"] + [None] * 7
    assert len(webhook.received) == 1


def test_a_worker_that_died_mid_delivery_is_replaced_after_its_lease_with_the_same_event_id(down, webhook, settings):
    dead = notification_claim(notification_id=down.pk)  # claimed, then the worker vanished
    assert dead is not None

    assert notification_claim(notification_id=down.pk) is None  # the lease still holds
    assert notifications_dispatch() == 0
    expired = later(settings.LOOKOUT_ALERT_LEASE_SECONDS + 1)
    claim = notification_claim(notification_id=down.pk, now=expired)
    assert claim is not None
    assert notification_settle(claim=claim, result=_send(claim)) == "delivered"

    # The dead worker's late settle changes nothing: its claim is gone.
    assert notification_settle(claim=dead, result=_send(dead)) == "delivered"
    down.refresh_from_db()
    assert down.state == "delivered"
    assert {r.headers["X-Lookout-Event-Id"] for r in webhook.received} == {str(down.event_id)}
    outcomes = list(down.attempt_log.order_by("number").values_list("number", "outcome"))
    assert outcomes[0] == (1, "delivered")  # the first attempt's own late settle recorded its truth
    assert outcomes[1] == (2, "delivered")


def test_an_abandoned_attempt_is_recorded_as_such_when_its_lease_is_taken_over(down, settings):
    notification_claim(notification_id=down.pk)
    notification_claim(notification_id=down.pk, now=later(settings.LOOKOUT_ALERT_LEASE_SECONDS + 1))

    assert list(down.attempt_log.order_by("number").values_list("number", "outcome")) == [(1, "abandoned"), (2, "")]


def test_the_sweep_publishes_due_rows_once_per_lease_and_expired_leases(down, settings):
    Notification.objects.filter(pk=down.pk).update(dispatched_at=None)

    assert notifications_dispatch() == 1
    assert notifications_dispatch() == 0  # published a moment ago: not again before a lease has passed
    assert notifications_dispatch(now=later(settings.LOOKOUT_ALERT_LEASE_SECONDS + 1)) == 1
    notification_claim(notification_id=down.pk)
    assert notifications_dispatch(now=later(settings.LOOKOUT_ALERT_LEASE_SECONDS * 2 + 2)) == 1


def test_one_notification_per_incident_channel_and_event_is_enforced_by_the_database(down):
    with pytest.raises(IntegrityError), transaction.atomic():
        Notification.objects.create(channel_id=down.channel_id, incident_id=down.incident_id, event=down.event,
                                    payload={}, due_at=timezone.now())


def test_an_email_alert_arrives_with_its_event_id(alice, smtp):
    channel = channel_create(owner=alice, spec=ChannelSpec(name="ops", kind="email", address="ops@example.com"))
    run(monitor_for(alice, channels=[channel], failure_threshold=1), "DU")
    for notification in Notification.objects.order_by("id"):
        assert notification_deliver(notification_id=notification.pk) == "delivered"

    subjects = [mail.subject for mail in smtp.received()]
    assert subjects == ["[Lookout] DOWN: shop", "[Lookout] UP: shop (down for 1m)"]
    assert [mail.event_id for mail in smtp.received()] == [
        str(n.event_id) for n in Notification.objects.order_by("id")]
    assert "Cause: HTTP 503" in smtp.received()[0].message.get_content()


def test_a_refused_email_address_is_permanent(alice, smtp):
    smtp.refused.add("gone@example.com")
    channel = channel_create(owner=alice, spec=ChannelSpec(name="gone", kind="email", address="gone@example.com"))
    run(monitor_for(alice, channels=[channel], failure_threshold=1), "D")

    assert notification_deliver(notification_id=Notification.objects.get().pk) == "failed"
    assert Channel.objects.get(pk=channel.pk).failing_since is not None


def test_an_unreachable_smtp_server_is_retried_not_blamed_on_the_channel(alice, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", 9
    channel = channel_create(owner=alice, spec=ChannelSpec(name="ops", kind="email", address="ops@example.com"))
    run(monitor_for(alice, channels=[channel], failure_threshold=1), "D")

    assert notification_deliver(notification_id=Notification.objects.get().pk) == "pending"
    assert Channel.objects.get(pk=channel.pk).failing_since is None


def test_the_notifications_api_lists_every_attempt_to_the_owner_only(alice_api, bob_api, down, webhook):
    webhook.answer(Answer(500))
    notification_deliver(notification_id=down.pk)
    Notification.objects.filter(pk=down.pk).update(due_at=timezone.now())
    notification_deliver(notification_id=down.pk)

    page = alice_api.get("/api/v1/notifications/", {"monitor": down.monitor_id, "event": "monitor.down"}).json()

    [shown] = page["results"]
    assert (shown["state"], shown["attempts"], shown["event_id"]) == ("delivered", 2, str(down.event_id))
    assert [(a["number"], a["outcome"], a["status_code"]) for a in shown["attempt_log"]] == [
        (1, "transient", 500), (2, "delivered", 200)]
    assert bob_api.get("/api/v1/notifications/").json()["count"] == 0
    assert bob_api.get(f"/api/v1/notifications/{down.pk}/").status_code == 404
    assert alice_api.get("/api/v1/notifications/", {"state": "bogus"}).status_code == 400


def _send(claim):
    from lookout.alerting.delivery import channel_send

    return channel_send(claim.notification.channel, message_for(claim.notification))


def test_the_body_is_stable_across_attempts(down):
    assert webhook_body(message_for(down)) == webhook_body(message_for(Notification.objects.get(pk=down.pk)))


def test_a_secret_that_cannot_be_decrypted_is_recorded_and_retried_not_stuck(down, settings):
    from lookout.core import encryption

    settings.LOOKOUT_ENCRYPTION_KEYS = ["a-rotated-key-that-never-encrypted-this-secret"]
    encryption._fernet.cache_clear()
    try:
        assert notification_deliver(notification_id=down.pk) == "pending"
    finally:
        encryption._fernet.cache_clear()
    assert "SecretUnreadable" in down.attempt_log.get().error
