"""Once-only monitor events (tls.expiring) alert the monitor's channels once, outside incidents."""

import uuid
from datetime import timedelta

import pytest

from lookout.alerting.delivery import notification_deliver
from lookout.alerting.models import AlertEvent, Notification
from lookout.probes import results
from lookout.probes.results import ProbeRecord
from support.alerting import T0, monitor_for, webhook_channel

pytestmark = pytest.mark.django_db


def probed_with_certificate(monitor, *, at, not_after, fingerprint: str = "cert-1") -> None:
    results.probe_result_record(monitor_id=monitor.pk, record=ProbeRecord(
        checked_at=at, success=True, status_code=200, response_time_ms=30.0, error="", task_id=str(uuid.uuid4()),
        tls={"subject": "CN=shop.example", "issuer": "CN=Test CA"}, tls_not_after=not_after,
        tls_fingerprint=fingerprint))


def test_an_expiring_certificate_alerts_once_per_certificate(alice, webhook):
    monitor = monitor_for(alice, channels=[webhook_channel(alice, webhook.url)], tls_expiry_days=14)

    for minute in range(3):
        probed_with_certificate(monitor, at=T0 + timedelta(minutes=minute), not_after=T0 + timedelta(days=5))
    probed_with_certificate(monitor, at=T0 + timedelta(minutes=5), not_after=T0 + timedelta(days=6),
                            fingerprint="cert-2")  # renewed, but expiring soon too: a new event

    notifications = list(Notification.objects.filter(event=AlertEvent.TLS_EXPIRING).order_by("id"))
    assert len(notifications) == 2
    assert notification_deliver(notification_id=notifications[0].pk) == "delivered"
    body = webhook.received[0].json()
    assert (body["event"], body["monitor"]["id"]) == ("tls.expiring", monitor.pk)
    assert body["certificate"]["days_left"] == 5.0 and body["certificate"]["subject"] == "CN=shop.example"


def test_a_certificate_far_from_expiry_alerts_nobody(alice, webhook):
    monitor = monitor_for(alice, channels=[webhook_channel(alice, webhook.url)], tls_expiry_days=14)
    probed_with_certificate(monitor, at=T0, not_after=T0 + timedelta(days=60))
    assert not Notification.objects.exists()
