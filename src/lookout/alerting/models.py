"""Alert channels, incidents, the notifications they cause (and every delivery attempt), maintenance windows,
and the mass-failure guard's episodes."""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from lookout.alerting.channels import CHANNEL_KINDS
from lookout.monitors.models import Monitor, MonitorEvent

# One per transport module (lookout.alerting.channels). (Members built at run time: to the type checker, Any.)
ChannelKind = models.TextChoices(  # type: ignore[call-overload]
    "ChannelKind", [(kind.upper(), kind) for kind in CHANNEL_KINDS])


class Channel(models.Model):
    """Where alerts go. One of `address` (email) or `url` (webhook, slack) is set, as its kind needs."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="channels")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=16, choices=ChannelKind.choices)
    address = models.EmailField(max_length=254, blank=True, default="")
    url = models.CharField(max_length=2048, blank=True, default="")
    # webhook: HMAC-SHA256 key of X-Lookout-Signature; encrypted at rest (lookout.core.encryption).
    secret = models.TextField(blank=True, default="")
    # Alerts every monitor of the owner, besides the channels each monitor names.
    is_default = models.BooleanField(default=False)
    # Receives installation events (lookout.degraded, lookout.recovered); only staff may set it.
    system_events = models.BooleanField(default=False)
    # A permanent delivery failure (a 4xx) marks the channel failing: it gets no new alerts until it is
    # changed or a test message gets through, instead of failing the same way for every alert.
    failing_since = models.DateTimeField(null=True, blank=True)
    failing_reason = models.CharField(max_length=500, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["owner", "id"])]

    def __str__(self) -> str:
        return f"{self.kind} channel {self.name!r}"


class Incident(models.Model):
    """A monitor's confirmed downtime: opened when it goes down, closed when it comes back up."""

    monitor = models.ForeignKey(Monitor, on_delete=models.CASCADE, related_name="incidents")
    # The first failed probe of the run that crossed failure_threshold; the downtime began then.
    started_at = models.DateTimeField()
    # The probe that crossed the threshold (alerts can go out no earlier).
    detected_at = models.DateTimeField()
    # The first successful probe of the run that crossed recovery_threshold.
    ended_at = models.DateTimeField(null=True, blank=True)
    cause = models.CharField(max_length=2000, blank=True, default="")
    # A monitor of several regions: those whose failures confirmed it, of how many counted ([] and 0: one region).
    regions = models.JSONField(default=list, blank=True)
    regions_total = models.PositiveSmallIntegerField(default=0)
    # Opened inside a maintenance window: its down alert waits for the window's end (and is never sent if the
    # monitor recovers first).
    alerts_deferred = models.BooleanField(default=False)

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [
            models.Index(fields=["monitor", "-started_at"]),
            models.Index(fields=["ended_at"]),
            models.Index(fields=["id"], name="incident_deferred_idx",
                         condition=Q(ended_at__isnull=True, alerts_deferred=True)),
        ]
        constraints = [
            models.UniqueConstraint(fields=["monitor"], condition=Q(ended_at__isnull=True),
                                    name="incident_one_open_per_monitor"),
        ]

    def __str__(self) -> str:
        return f"incident {self.pk} of monitor {self.monitor_id}"


class DegradedEpisode(models.Model):
    """A stretch of time during which the mass-failure guard suspects Lookout itself (region empty), or one region's
    failures stand so far above the others' that its votes are not counted (lookout.regions.suspects)."""

    region = models.CharField(max_length=32, blank=True, default="")
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    # Held alerts were let go while the episode went on (it lasted LOOKOUT_GUARD_MAX_HOLD_SECONDS).
    released_at = models.DateTimeField(null=True, blank=True)
    failing = models.PositiveIntegerField(help_text="Failing monitors when the episode opened.")
    probed = models.PositiveIntegerField(help_text="Monitors probed within the guard's window then.")

    class Meta:
        ordering = ["-started_at"]
        constraints = [
            # At most one open episode per region, and one for the whole installation (region "").
            models.UniqueConstraint(fields=["region"], condition=Q(ended_at__isnull=True),
                                    name="degraded_episode_one_open"),
        ]

    def __str__(self) -> str:
        return f"degraded since {self.started_at:%Y-%m-%d %H:%M:%S}"


class AlertEvent(models.TextChoices):
    MONITOR_DOWN = "monitor.down"
    MONITOR_UP = "monitor.up"
    TLS_EXPIRING = "tls.expiring"
    DEGRADED = "lookout.degraded"
    RECOVERED = "lookout.recovered"
    REGION_SUSPECT = "lookout.region.suspect"
    REGION_RECOVERED = "lookout.region.recovered"
    TEST = "channel.test"


class NotificationState(models.TextChoices):
    HELD = "held"  # the mass-failure guard holds it
    PENDING = "pending"  # to be sent at due_at
    SENDING = "sending"  # claimed by a worker until lease_until
    DELIVERED = "delivered"
    FAILED = "failed"  # permanently, or after LOOKOUT_ALERT_MAX_ATTEMPTS
    DROPPED = "dropped"  # held, then found not worth sending (the monitor recovered meanwhile)


class Notification(models.Model):
    """One event for one channel: the row that delivery claims (healthchecks' Flip pattern).

    The unique constraints make "the same alert twice" impossible to create; the conditional claim makes it
    impossible to send twice once delivered. event_id goes out with every attempt, so a receiver can drop the
    rare repeat (a worker that died after sending, before recording it).
    """

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="notifications")
    event = models.CharField(max_length=32, choices=AlertEvent.choices)
    event_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    monitor = models.ForeignKey(Monitor, on_delete=models.CASCADE, null=True, blank=True,
                                related_name="notifications")
    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, null=True, blank=True,
                                 related_name="notifications")
    monitor_event = models.ForeignKey(MonitorEvent, on_delete=models.CASCADE, null=True, blank=True,
                                      related_name="notifications")
    episode = models.ForeignKey(DegradedEpisode, on_delete=models.CASCADE, null=True, blank=True,
                                related_name="notifications")
    # What the message says, frozen when the event happened: every attempt sends the same body.
    payload = models.JSONField()
    state = models.CharField(max_length=16, choices=NotificationState.choices, default=NotificationState.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    due_at = models.DateTimeField(help_text="No attempt before this time (retries back off here, not in the broker).")
    # When a delivery task was last published for it: the sweep publishes again only after a lease's time.
    dispatched_at = models.DateTimeField(null=True, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    claim = models.UUIDField(null=True, blank=True, help_text="The current claim; only its holder may settle.")
    last_error = models.CharField(max_length=1000, blank=True, default="")
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["due_at"], name="notification_due_idx", condition=Q(state="pending")),
            models.Index(fields=["lease_until"], name="notification_lease_idx", condition=Q(state="sending")),
            # The guard's sweep asks "anything held?" every few seconds; almost always nothing is.
            models.Index(fields=["created_at"], name="notification_held_idx", condition=Q(state="held")),
            models.Index(fields=["channel", "-created_at"]),
            models.Index(fields=["monitor", "-created_at"]),
            models.Index(fields=["created_at"]),
        ]
        constraints = [
            models.UniqueConstraint(fields=["incident", "channel", "event"], condition=Q(incident__isnull=False),
                                    name="notification_once_per_incident_channel_event"),
            models.UniqueConstraint(fields=["monitor_event", "channel"], condition=Q(monitor_event__isnull=False),
                                    name="notification_once_per_monitor_event_channel"),
            models.UniqueConstraint(fields=["episode", "channel", "event"], condition=Q(episode__isnull=False),
                                    name="notification_once_per_episode_channel_event"),
        ]

    def __str__(self) -> str:
        return f"{self.event} to channel {self.channel_id} ({self.state})"


class AttemptOutcome(models.TextChoices):
    DELIVERED = "delivered"
    TRANSIENT = "transient"  # timeout, connection error, 5xx, 429: retried with backoff
    PERMANENT = "permanent"  # 4xx, refused address: not retried
    ABANDONED = "abandoned"  # the worker died mid-attempt; found when its lease ran out


class NotificationAttempt(models.Model):
    notification = models.ForeignKey(Notification, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=16, choices=AttemptOutcome.choices, blank=True, default="")
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=1000, blank=True, default="")
    duration_ms = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["notification", "number", "id"]

    def __str__(self) -> str:
        return f"attempt {self.number} of notification {self.notification_id}: {self.outcome or 'running'}"


class MaintenanceWindow(models.Model):
    """One-off (starts_at..ends_at) or recurring (cron + duration_seconds), for one monitor or all of an owner's."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="maintenance_windows")
    monitor = models.ForeignKey(Monitor, on_delete=models.CASCADE, null=True, blank=True,
                                related_name="maintenance_windows", help_text="null: every monitor of the owner.")
    name = models.CharField(max_length=200, blank=True, default="")
    starts_at = models.DateTimeField(null=True, blank=True)
    ends_at = models.DateTimeField(null=True, blank=True)
    cron = models.CharField(max_length=120, null=True, blank=True)  # noqa: DJ001 (null: a one-off window)
    timezone = models.CharField(max_length=64, default="UTC")
    duration_seconds = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["ends_at"], condition=Q(cron__isnull=True), name="window_oneoff_end_idx")]
        constraints = [
            models.CheckConstraint(
                name="window_oneoff_xor_recurring",
                condition=(Q(cron__isnull=True, duration_seconds__isnull=True, starts_at__isnull=False,
                             ends_at__isnull=False)
                           | Q(cron__isnull=False, duration_seconds__isnull=False, starts_at__isnull=True,
                               ends_at__isnull=True)),
            ),
            models.CheckConstraint(name="window_ends_after_start",
                                   condition=Q(ends_at__isnull=True) | Q(ends_at__gt=models.F("starts_at"))),
        ]

    def __str__(self) -> str:
        return self.name or f"maintenance window {self.pk}"
