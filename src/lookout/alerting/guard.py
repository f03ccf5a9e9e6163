"""The mass-failure guard: when an unusual share of all monitors fail at once, suspect Lookout itself.

Its own network, DNS or egress failing looks, from inside, like the whole world going down. Rather than
flooding every owner with alerts that are most likely false, the guard opens a DegradedEpisode: per-monitor
down alerts are held, and the staff's system channels get one `lookout.degraded` event (and the metric
`lookout_degraded` reads 1). It knows better later:
- a monitor that recovers while its alert is held had a blip that was most likely ours: the alert is dropped
  (lookout.alerting.incidents.incident_close);
- when failures fall back below the thresholds, the episode ends and staff get `lookout.recovered`; each alert
  still held goes out if its monitor is still down at its next probe (it really is down), and is dropped if
  that probe brings it back up;
- an episode lasting LOOKOUT_GUARD_MAX_HOLD_SECONDS is not a blip: new alerts are no longer held, and held ones
  go out as their monitors are probed again, still down.

"Failing" is a monitor whose latest probe failed (any run of failures, before failure_threshold confirms it,
so the guard sees a mass failure before the first alert is due), among the enabled monitors probed within
LOOKOUT_GUARD_WINDOW_SECONDS.
"""

from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from lookout.alerting.models import AlertEvent, DegradedEpisode, Notification, NotificationState
from lookout.alerting.notifications import episode_notify
from lookout.monitors.models import Monitor


def failure_counts(*, now: datetime) -> tuple[int, int]:
    """(failing, probed): enabled monitors probed within the window whose last probe failed, and all of them (0 while
    fewer fail than LOOKOUT_GUARD_MIN_FAILING: not suspicious whatever the total)."""
    probed = Monitor.objects.filter(enabled=True,
                                    last_checked_at__gte=now - timedelta(seconds=settings.LOOKOUT_GUARD_WINDOW_SECONDS))
    # The failing count uses a partial index of failing monitors only. The probed count reads the whole table (1M
    # rows: ~0.1-0.2 s at every down transition): only counted when the failing alone could be suspicious.
    failing = probed.filter(consecutive_failures__gt=0).count()
    if failing < settings.LOOKOUT_GUARD_MIN_FAILING:
        return failing, 0
    return failing, probed.count()


def suspicious(*, failing: int, probed: int) -> bool:
    return (failing >= settings.LOOKOUT_GUARD_MIN_FAILING
            and failing * 100 >= settings.LOOKOUT_GUARD_FAILING_PERCENT * probed)


def _installation_episodes() -> QuerySet[DegradedEpisode]:
    """The guard's own episodes: one with a region is that region being suspect (lookout.regions.suspects),
    which neither holds alerts nor says anything about Lookout itself."""
    return DegradedEpisode.objects.filter(region="")


def episode_open_get() -> DegradedEpisode | None:
    return _installation_episodes().filter(ended_at__isnull=True).first()


def guard_holds(*, now: datetime | None = None) -> bool:
    """Whether a down alert created now must be held. Opens an episode when the failures call for one.

    Called at every down transition, inside its transaction; cheap unless an episode may be starting.
    """
    if not settings.LOOKOUT_GUARD_ENABLED:
        return False
    now = now or timezone.now()
    episode = episode_open_get()
    if episode is None:
        failing, probed = failure_counts(now=now)
        if not suspicious(failing=failing, probed=probed):
            return False
        episode = episode_open(now=now, failing=failing, probed=probed)
    return episode.released_at is None


def episode_open(*, now: datetime, failing: int, probed: int) -> DegradedEpisode:
    try:
        # A savepoint: losing the race to another worker opening it must not abort the caller's transaction.
        with transaction.atomic():
            episode = DegradedEpisode.objects.create(started_at=now, failing=failing, probed=probed)
    except IntegrityError:  # the unique open episode exists: another worker opened it first
        existing = episode_open_get()
        if existing is None:  # opened and closed meanwhile: hold nothing
            return DegradedEpisode(started_at=now, failing=failing, probed=probed, released_at=now)
        return existing
    # Down alerts created just before the thresholds were crossed, not yet claimed by a worker: hold them too.
    Notification.objects.filter(
        state=NotificationState.PENDING, event=AlertEvent.MONITOR_DOWN,
        created_at__gte=now - timedelta(seconds=settings.LOOKOUT_GUARD_WINDOW_SECONDS),
    ).update(state=NotificationState.HELD, dispatched_at=None)
    episode_notify(episode=episode, event=AlertEvent.DEGRADED)
    return episode


def guard_sweep(*, now: datetime | None = None) -> str:
    """End the open episode once failures are back below the thresholds (or stop holding after the longest
    hold), and settle held alerts whose monitors were probed since. Returns "", "ended" or "released"."""
    now = now or timezone.now()
    done = ""
    episode = episode_open_get()
    if episode is not None:
        with transaction.atomic():
            done = _episode_sweep(episode, now=now)
    held_settle(now=now)
    return done


def _episode_sweep(episode: DegradedEpisode, *, now: datetime) -> str:
    failing, probed = failure_counts(now=now)
    if not suspicious(failing=failing, probed=probed):
        if not DegradedEpisode.objects.filter(pk=episode.pk, ended_at__isnull=True).update(ended_at=now):
            return ""  # another sweep ended it
        episode.ended_at = now
        dropped = Notification.objects.filter(state=NotificationState.DROPPED, event=AlertEvent.MONITOR_DOWN,
                                              created_at__gte=episode.started_at).count()
        held = Notification.objects.filter(state=NotificationState.HELD).count()
        episode_notify(episode=episode, event=AlertEvent.RECOVERED,
                       extra={"alerts_dropped": dropped, "alerts_held": held})
        return "ended"
    held_too_long = now - episode.started_at >= timedelta(seconds=settings.LOOKOUT_GUARD_MAX_HOLD_SECONDS)
    if held_too_long and DegradedEpisode.objects.filter(pk=episode.pk, released_at__isnull=True).update(
            released_at=now):
        return "released"
    return ""


def held_settle(*, now: datetime) -> int:
    """Release held alerts of monitors still down at a probe after the guard stopped holding; returns how many.

    Not all at once when the episode ends: monitors recover one probe at a time, and one whose next probe
    succeeds closes its incident, which drops its held alert (incident_close). A monitor not probed since
    (paused, a long interval) has its alert released after LOOKOUT_GUARD_WINDOW_SECONDS.
    """
    if not Notification.objects.filter(state=NotificationState.HELD).exists():  # the usual case
        return 0
    latest = _installation_episodes().order_by("-started_at").first()
    if latest is not None and latest.ended_at is None and latest.released_at is None:
        return 0  # still holding
    since = (latest.ended_at or latest.released_at) if latest else now
    assert since is not None
    held = Notification.objects.filter(state=NotificationState.HELD)
    if now - since < timedelta(seconds=settings.LOOKOUT_GUARD_WINDOW_SECONDS):
        # Its latest probe, taken after Lookout was fine again, failed: the monitor really is down.
        held = held.filter(monitor__last_checked_at__gt=since, monitor__consecutive_failures__gt=0,
                           incident__ended_at__isnull=True)
    return held.update(state=NotificationState.PENDING, due_at=now, dispatched_at=None)


def guard_degraded() -> bool:
    """For the lookout_degraded metric: an episode is open."""
    return _installation_episodes().filter(ended_at__isnull=True).exists()
