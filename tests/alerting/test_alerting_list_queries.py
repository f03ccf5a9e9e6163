"""The alerting list endpoints take as many queries for many rows as for a few (no N+1)."""

from datetime import timedelta
from itertools import count

import pytest
from django.utils import timezone

from lookout.alerting.maintenance import WindowSpec, window_create
from lookout.alerting.models import AlertEvent, AttemptOutcome, Incident, Notification, NotificationAttempt
from lookout.alerting.services import ChannelSpec, channel_create
from support.alerting import monitor_for
from support.queries import assert_queries_do_not_grow

pytestmark = pytest.mark.django_db

serial = count()


def test_the_channel_list_does_not_query_per_channel(alice, alice_api):
    def add(rows: int) -> None:
        for _ in range(rows):
            n = next(serial)
            channel_create(owner=alice, spec=ChannelSpec(name=f"c{n}", kind="webhook",
                                                         url=f"https://hooks.example/{n}", secret="s"))

    assert_queries_do_not_grow(alice_api, "/api/v1/channels/", add)


@pytest.mark.parametrize("params", [{}, {"open": "false"}])
def test_the_incident_list_does_not_query_per_incident(alice, alice_api, params):
    monitor = monitor_for(alice)

    def add(rows: int) -> None:
        for _ in range(rows):
            start = timezone.now() - timedelta(hours=next(serial) + 1)
            Incident.objects.create(monitor=monitor, started_at=start, detected_at=start,
                                    ended_at=start + timedelta(minutes=5), cause="HTTP 503")

    assert_queries_do_not_grow(alice_api, "/api/v1/incidents/", add, params=params)


def test_the_notification_list_does_not_query_per_notification_or_attempt(alice, alice_api):
    channel = channel_create(owner=alice, spec=ChannelSpec(name="mail", kind="email", address="ops@example.com"))
    monitor = monitor_for(alice, channels=[channel])

    def add(rows: int) -> None:
        now = timezone.now()
        for _ in range(rows):
            start = now - timedelta(hours=next(serial) + 1)
            incident = Incident.objects.create(monitor=monitor, started_at=start, detected_at=start,
                                               ended_at=start + timedelta(minutes=5))
            notification = Notification.objects.create(channel=channel, monitor=monitor, incident=incident,
                                                       event=AlertEvent.MONITOR_DOWN, payload={}, due_at=start)
            for number in (1, 2):
                NotificationAttempt.objects.create(notification=notification, number=number, started_at=start,
                                                   finished_at=start, outcome=AttemptOutcome.DELIVERED)

    assert_queries_do_not_grow(alice_api, "/api/v1/notifications/", add)


def test_the_maintenance_window_list_does_not_query_per_window(alice, alice_api):
    monitor = monitor_for(alice)

    def add(rows: int) -> None:
        now = timezone.now()
        for _ in range(rows):
            n = next(serial)
            if n % 2:
                window_create(owner=alice, spec=WindowSpec(monitor=monitor.pk, name=f"w{n}",
                                                           starts_at=now + timedelta(days=n),
                              ends_at=now + timedelta(days=n, hours=1)))
            else:
                window_create(owner=alice, spec=WindowSpec(name=f"w{n}", cron="0 4 * * sun", duration_seconds=3600))

    assert_queries_do_not_grow(alice_api, "/api/v1/maintenance-windows/", add)
