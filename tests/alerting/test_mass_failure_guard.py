"""The mass-failure guard: most monitors failing at once hold their alerts and raise one lookout.degraded."""

from datetime import timedelta

import pytest
from django.utils import timezone

from lookout.alerting.guard import guard_degraded, guard_sweep
from lookout.alerting.models import AlertEvent, DegradedEpisode, Notification, NotificationState
from lookout.observability.metrics import DegradedCollector
from support.alerting import monitor_for, record, staff_webhook_channel, webhook_channel

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def thresholds(settings):
    settings.LOOKOUT_GUARD_MIN_FAILING = 3
    settings.LOOKOUT_GUARD_FAILING_PERCENT = 50
    settings.LOOKOUT_GUARD_WINDOW_SECONDS = 300
    settings.LOOKOUT_GUARD_MAX_HOLD_SECONDS = 600


@pytest.fixture
def staff_channel(django_user_model):
    return staff_webhook_channel(django_user_model)


@pytest.fixture
def fleet(alice):
    hook = webhook_channel(alice, "http://127.0.0.1:9/alice")
    return [monitor_for(alice, name=f"m{index}", channels=[hook], failure_threshold=2) for index in range(5)]


_clock = {"last": timezone.now()}


def probe_all(monitors, pattern: str) -> None:
    """Each character is one round of probes over all monitors (U up, D down), a second after the last round."""
    for char in pattern:
        at = _clock["last"] = max(timezone.now(), _clock["last"] + timedelta(seconds=1))
        for monitor in monitors:
            record(monitor, at=at, success=char == "U")


def sweep() -> str:
    """The guard's sweep, just after the last round of probes (probe_all's clock may run ahead of the real one)."""
    return guard_sweep(now=_clock["last"] + timedelta(milliseconds=500))


def events(event: str) -> list[Notification]:
    return list(Notification.objects.filter(event=event))


def test_most_monitors_failing_at_once_hold_their_alerts_and_tell_staff_once(fleet, staff_channel, alice):
    probe_all(fleet[:1], "U")
    probe_all(fleet[1:], "DD")  # 4 of 5 failing: each crosses its threshold, not one alert goes out

    assert guard_degraded()
    downs = events(AlertEvent.MONITOR_DOWN)
    assert len(downs) == 4 and {n.state for n in downs} == {NotificationState.HELD}
    [degraded] = events(AlertEvent.DEGRADED)
    assert degraded.channel == staff_channel and degraded.state == NotificationState.PENDING
    assert (degraded.payload["episode"]["failing"], degraded.payload["episode"]["probed"]) == (4, 5)
    assert not Notification.objects.filter(channel__owner=alice, state=NotificationState.PENDING).exists()
    assert list(DegradedCollector(guard_degraded, cache_seconds=0).collect())[0].samples[0].value == 1.0


def test_held_alerts_are_dropped_for_monitors_that_recover_and_sent_for_those_still_down_after_the_end(
        fleet, staff_channel):
    probe_all(fleet[:1], "U")
    probe_all(fleet[1:], "DD")
    probe_all(fleet[1:3], "U")  # two came back: it was most likely us

    dropped = Notification.objects.filter(event=AlertEvent.MONITOR_DOWN, state=NotificationState.DROPPED)
    assert dropped.count() == 2 and not events(AlertEvent.MONITOR_UP)
    assert sweep() == "ended"  # 2 failing of 5: below the minimum of 3
    [recovered] = events(AlertEvent.RECOVERED)
    assert (recovered.payload["episode"]["alerts_dropped"], recovered.payload["episode"]["alerts_held"]) == (2, 2)
    assert not guard_degraded()

    # Still held: each waits for its monitor's next probe, as monitors come back one probe at a time.
    assert Notification.objects.filter(state=NotificationState.HELD).count() == 2
    probe_all(fleet[3:4], "U")  # recovered at its first probe after the end: dropped, nothing said
    probe_all(fleet[4:], "D")  # still down after Lookout itself is fine: really down
    assert sweep() == ""

    states = dict(Notification.objects.filter(event=AlertEvent.MONITOR_DOWN).values_list("monitor_id", "state"))
    assert states == {fleet[1].pk: "dropped", fleet[2].pk: "dropped", fleet[3].pk: "dropped",
                      fleet[4].pk: "pending"}
    assert not events(AlertEvent.MONITOR_UP)


def test_held_alerts_of_monitors_not_probed_again_go_out_after_the_window(fleet, staff_channel, settings):
    probe_all(fleet[:1], "U")
    probe_all(fleet[1:], "DD")
    guard_sweep(now=timezone.now() + timedelta(seconds=400))  # failures aged out of the window: ended
    assert Notification.objects.filter(state=NotificationState.HELD).count() == 4

    guard_sweep(now=timezone.now() + timedelta(seconds=401 + settings.LOOKOUT_GUARD_WINDOW_SECONDS))

    assert Notification.objects.filter(state=NotificationState.PENDING, event=AlertEvent.MONITOR_DOWN).count() == 4


def test_a_long_episode_releases_held_alerts_and_holds_no_more(fleet, staff_channel, settings):
    settings.LOOKOUT_GUARD_WINDOW_SECONDS = 3600  # the failures still count ten minutes later
    probe_all(fleet[:1], "U")
    probe_all(fleet[1:], "DD")
    episode = DegradedEpisode.objects.get()

    assert guard_sweep(now=episode.started_at + timedelta(seconds=599)) == ""
    assert guard_sweep(now=episode.started_at + timedelta(seconds=600)) == "released"

    assert guard_degraded()  # still open: staff get lookout.recovered only when failures are back to normal
    probe_all(fleet[:1], "DD")  # the last one goes down too: not held any more
    assert Notification.objects.get(monitor=fleet[0], event=AlertEvent.MONITOR_DOWN).state == "pending"
    _clock["last"] = episode.started_at + timedelta(seconds=600)
    probe_all(fleet[1:], "D")  # the held ones' monitors, probed again, still down: their alerts go out
    sweep()
    assert not Notification.objects.filter(state=NotificationState.HELD).exists()


def test_a_few_monitors_failing_alert_as_usual(fleet, staff_channel):
    probe_all(fleet[2:], "U")
    probe_all(fleet[:2], "DD")  # 2 failing: fewer than LOOKOUT_GUARD_MIN_FAILING

    assert not DegradedEpisode.objects.exists()
    assert {n.state for n in events(AlertEvent.MONITOR_DOWN)} == {NotificationState.PENDING}


def test_below_the_share_no_episode_opens(alice, staff_channel, settings):
    settings.LOOKOUT_GUARD_FAILING_PERCENT = 90
    monitors = [monitor_for(alice, name=f"m{index}", failure_threshold=1) for index in range(5)]
    probe_all(monitors[:1], "U")
    probe_all(monitors[1:], "D")  # 80 % < 90 %

    assert not DegradedEpisode.objects.exists()


def test_alerts_created_just_before_the_thresholds_were_crossed_are_held_too(alice, staff_channel):
    hook = webhook_channel(alice, "http://127.0.0.1:9/alice")
    quick = monitor_for(alice, name="quick", channels=[hook], failure_threshold=1)
    others = [monitor_for(alice, name=f"m{index}", channels=[hook], failure_threshold=2) for index in range(3)]
    probe_all([quick], "D")  # alone: an ordinary alert
    assert Notification.objects.get(monitor=quick).state == NotificationState.PENDING

    probe_all(others, "DD")

    assert Notification.objects.get(monitor=quick).state == NotificationState.HELD


def test_the_guard_can_be_turned_off(fleet, staff_channel, settings):
    settings.LOOKOUT_GUARD_ENABLED = False
    probe_all(fleet, "DD")
    assert not DegradedEpisode.objects.exists()
    assert {n.state for n in events(AlertEvent.MONITOR_DOWN)} == {NotificationState.PENDING}


def test_the_database_allows_one_open_episode_at_a_time():
    from django.db import IntegrityError, transaction

    DegradedEpisode.objects.create(started_at=timezone.now(), failing=5, probed=5)
    with pytest.raises(IntegrityError), transaction.atomic():
        DegradedEpisode.objects.create(started_at=timezone.now(), failing=5, probed=5)
    DegradedEpisode.objects.update(ended_at=timezone.now())
    DegradedEpisode.objects.create(started_at=timezone.now(), failing=5, probed=5)  # a new one, once it ended
