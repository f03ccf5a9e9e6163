from django.conf import settings
from django.db import models
from django.utils.functional import cached_property
from django_celery_beat.models import PeriodicTask

from lookout.probes.engine import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_REDIRECTS, PROBE_TYPES, RECORD_TYPES


class MonitorStatus(models.TextChoices):
    PENDING = "pending"
    UP = "up"
    DOWN = "down"
    PAUSED = "paused"
    MAINTENANCE = "maintenance"  # inside a maintenance window: probed and recorded, no incident alerts
    # Probed from several regions: some failed their latest round, fewer than `confirm` (no incident, no alert).
    DEGRADED = "degraded"


class MonitorHealth(models.TextChoices):
    """What the state machine last confirmed; `status` shows it unless the monitor is paused or in maintenance."""

    PENDING = "pending"
    UP = "up"
    DOWN = "down"


# The probe engine's types (lookout.probes.engine.types), and push: a heartbeat, where the target calls us (no
# probe, no PeriodicTask). A new probe type changes these choices: its migration is an AlterField of `type`.
# (Members built at run time: django-stubs types only the class syntax, so to the type checker these are Any.)
MonitorType = models.TextChoices(  # type: ignore[call-overload]
    "MonitorType", [(name.upper(), name) for name in (*PROBE_TYPES, "push")])
RecordType = models.TextChoices("RecordType", [(name, name) for name in RECORD_TYPES])  # type: ignore[call-overload]


class MetricsDetail(models.TextChoices):
    """Per-monitor series beyond the default ones (docs/metrics.md), each opted into per monitor (Monitor.metrics)
    or for every monitor (LOOKOUT_MONITOR_METRICS_DETAIL): they multiply Prometheus' series, so none by default."""

    STATUS = "status"  # lookout_monitor_status: 6 series (a state set)
    PHASES = "phases"  # lookout_monitor_last_phase_duration_seconds: up to 5
    INCIDENTS = "incidents"  # lookout_monitor_open_incidents: 1
    REGIONS = "regions"  # lookout_monitor_region_up: 1 per named region with a recent result


class HttpMethod(models.TextChoices):
    GET = "GET"
    HEAD = "HEAD"
    POST = "POST"
    PUT = "PUT"
    PATCH = "PATCH"
    DELETE = "DELETE"
    OPTIONS = "OPTIONS"


class Monitor(models.Model):
    """An endpoint to probe on a schedule. The source of truth for its PeriodicTask."""

    # PROTECT: deleting a user must go through monitor_delete so schedules go with their monitors.
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="monitors")
    name = models.CharField(max_length=200)
    type = models.CharField(max_length=8, choices=MonitorType.choices, default=MonitorType.HTTP)
    # http(s)://…, tcp://host:port, dns://resolver/name; empty for push monitors.
    url = models.CharField(max_length=2048, blank=True, default="")
    method = models.CharField(max_length=7, choices=HttpMethod.choices, default=HttpMethod.GET)
    body = models.TextField(blank=True, default="", help_text="HTTP request body.")
    interval = models.PositiveIntegerField(null=True, blank=True, help_text="Seconds between probes.")
    # null, not "": "no crontab" is what the interval-xor-cron constraint checks.
    cron = models.CharField(max_length=120, null=True, blank=True, help_text="5-field crontab.")  # noqa: DJ001
    timezone = models.CharField(max_length=64, default="UTC")
    timeout = models.FloatField(help_text="Seconds; never above the interval.")
    expected_status = models.JSONField(null=True, blank=True, help_text="Accepted codes; null: any 2xx/3xx.")
    keyword = models.CharField(max_length=1024, null=True, blank=True)  # noqa: DJ001 (null: no keyword check)
    headers = models.JSONField(default=dict, blank=True)
    # Encrypted at rest (lookout.core.encryption); write-only in the API.
    secret_headers = models.TextField(blank=True, default="")
    basic_auth_username = models.CharField(max_length=256, blank=True, default="")
    basic_auth_password = models.TextField(blank=True, default="")
    follow_redirects = models.BooleanField(default=True)
    max_redirects = models.PositiveSmallIntegerField(default=DEFAULT_MAX_REDIRECTS)
    max_body_bytes = models.PositiveIntegerField(default=DEFAULT_MAX_BODY_BYTES)
    ip_version = models.PositiveSmallIntegerField(null=True, blank=True, help_text="4, 6 or null (either).")
    verify_tls = models.BooleanField(default=True)
    tls_expiry_days = models.PositiveSmallIntegerField(default=14)
    conditions = models.JSONField(default=list, blank=True)
    send = models.TextField(blank=True, default="", help_text="tcp: bytes to send once connected.")
    expect = models.TextField(blank=True, default="", help_text="tcp: bytes the answer must contain.")
    record_type = models.CharField(max_length=8, choices=RecordType.choices, default=RecordType.A)
    expected_answer = models.CharField(max_length=512, blank=True, default="")
    grace = models.PositiveIntegerField(default=60, help_text="push: seconds of slack after the interval.")
    push_token = models.CharField(max_length=64, unique=True, null=True, blank=True)
    # push: when the next heartbeat is overdue; the sweep's indexed query reads only this.
    push_deadline = models.DateTimeField(null=True, blank=True)
    enabled = models.BooleanField(default=True)
    status = models.CharField(max_length=16, choices=MonitorStatus.choices, default=MonitorStatus.PENDING)
    # The state machine (lookout.alerting.state): down after failure_threshold failed probes in a row, up again
    # after recovery_threshold successes, so a flapping target does not alert on every probe.
    failure_threshold = models.PositiveSmallIntegerField(default=2)
    # Where it is probed from (names of LOOKOUT_REGIONS; empty: the home region alone), and how many of those
    # regions must fail a round before it is down (null: a majority). One region behaves as regions never existed.
    regions = models.JSONField(default=list, blank=True)
    confirm = models.PositiveSmallIntegerField(null=True, blank=True)
    # The round being decided, for a monitor of several regions (lookout.regions.agreement): its due time, each
    # region's vote, the state before it and whether it was decided. Rounds, not single results, move the state.
    round = models.JSONField(default=dict, blank=True)
    recovery_threshold = models.PositiveSmallIntegerField(default=1)
    # Opt-in per-monitor series (MetricsDetail values) on top of the at most 5 every monitor has.
    metrics = models.JSONField(default=list, blank=True)
    health = models.CharField(max_length=8, choices=MonitorHealth.choices, default=MonitorHealth.PENDING)
    consecutive_failures = models.PositiveIntegerField(default=0)
    consecutive_successes = models.PositiveIntegerField(default=0)
    # When the current run of failures (or successes) began: an incident starts at its first failed probe.
    streak_started_at = models.DateTimeField(null=True, blank=True)
    # Besides these, the owner's default channels are alerted too.
    channels = models.ManyToManyField("alerting.Channel", blank=True, related_name="monitors")
    last_checked_at = models.DateTimeField(null=True, blank=True)
    last_response_time_ms = models.FloatField(null=True, blank=True)
    last_phases = models.JSONField(default=dict, blank=True, help_text="Milliseconds per phase of the last probe.")
    tls_not_after = models.DateTimeField(null=True, blank=True)
    tls_fingerprint = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # PROTECT: the schedule is derived from the monitor and only goes away with it (monitor_delete).
    periodic_task = models.OneToOneField(PeriodicTask, on_delete=models.PROTECT, related_name="monitor",
                                         null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["owner", "id"]),
            models.Index(fields=["push_deadline"], name="monitor_push_deadline_idx",
                         condition=models.Q(type="push", enabled=True)),
            # The mass-failure guard counts failing monitors; only those are in this index. Keyed on id, not on
            # last_checked_at, which every recorded result changes: a healthy monitor's row is then updated in place
            # (a HOT update, no new entry in any index), about half of recording's PostgreSQL time before
            # (bench/README.md, "Recording results").
            models.Index(fields=["id"], name="monitor_failing_idx",
                         condition=models.Q(consecutive_failures__gt=0, enabled=True)),
        ]
        constraints = [
            models.CheckConstraint(
                name="monitor_probed_xor_push",
                condition=(models.Q(type="push", periodic_task__isnull=True)
                           | (~models.Q(type="push") & models.Q(periodic_task__isnull=False))),
            ),
            models.CheckConstraint(
                name="monitor_interval_xor_cron",
                condition=(models.Q(interval__isnull=False, cron__isnull=True)
                           | models.Q(interval__isnull=True, cron__isnull=False)),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.url})"

    @cached_property
    def channel_ids(self) -> list[int]:
        """Its channels' ids, by id (selectors.monitor_relations_load fills this for a page of monitors at once)."""
        return list(self.channels.order_by("id").values_list("id", flat=True))

    @cached_property
    def region_state_list(self) -> list["MonitorRegion"]:
        """Its regions' latest results (filled like channel_ids)."""
        return list(self.region_states.all())


class ProbeResult(models.Model):
    """One probe's outcome. On PostgreSQL the table is partitioned by day on checked_at (lookout.monitors.partitions).

    The database's primary key there is (id, checked_at): a partitioned table's keys must include the partition
    key. Django still addresses rows by `id` alone (unique: every id comes from one sequence), because the
    admin, DRF and `result.pk` callers expect a scalar key. So: no unique constraint without checked_at, and
    no ForeignKey to this model (PostgreSQL cannot reference a key that is not unique on its own).
    """

    # No index of its own: (monitor, -checked_at) below serves every lookup by monitor. No foreign key in the
    # database either: its check of every inserted result at commit repeats what recording's lock of the monitor's
    # row already guarantees, and deleting a monitor locks that row before it deletes the results (Django still
    # cascades).
    monitor = models.ForeignKey(Monitor, on_delete=models.CASCADE, related_name="results", db_index=False,
                                db_constraint=False)
    checked_at = models.DateTimeField(help_text="When the probe started.")
    success = models.BooleanField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response_time_ms = models.FloatField()
    error = models.TextField(blank=True, default="")
    task_id = models.CharField(max_length=64, blank=True, default="")
    phases = models.JSONField(default=dict, blank=True,
                              help_text="Milliseconds per phase: dns, connect, tls, processing, transfer.")
    tls = models.JSONField(null=True, blank=True, help_text="Certificate facts, when TLS was spoken.")
    failed_condition = models.CharField(max_length=500, blank=True, default="")
    # The region that probed (a name of LOOKOUT_REGIONS; empty in results stored before regions existed: home).
    region = models.CharField(max_length=32, blank=True, default="")

    class Meta:
        ordering = ["-checked_at", "-id"]
        indexes = [
            models.Index(fields=["monitor", "-checked_at"]),
            models.Index(fields=["checked_at"]),
            # A probe delivered again (its worker died after the commit, before the acknowledgement) is found by
            # its task id and recorded once (lookout.probes.results).
            models.Index(fields=["task_id"]),
        ]

    def __str__(self) -> str:
        return f"{self.monitor_id} at {self.checked_at:%Y-%m-%d %H:%M:%S}: {'up' if self.success else 'down'}"


class OwnerMonitorCount(models.Model):
    """How many monitors an owner has, kept by monitor_create and monitor_delete in their transactions: the
    monitor list's `count` reads this row instead of counting the owner's monitors (a million index entries)."""

    owner = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True,
                                 related_name="monitor_count")
    monitors = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.owner_id}: {self.monitors} monitors"


class RegionStatus(models.TextChoices):
    UP = "up"
    DOWN = "down"


class MonitorRegion(models.Model):
    """A monitor's latest result from one of its regions: what its detail, metrics and dashboards show."""

    monitor = models.ForeignKey(Monitor, on_delete=models.CASCADE, related_name="region_states")
    region = models.CharField(max_length=32)
    status = models.CharField(max_length=8, choices=RegionStatus.choices)
    checked_at = models.DateTimeField()
    response_time_ms = models.FloatField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True, default="")

    class Meta:
        ordering = ["monitor", "region"]
        constraints = [models.UniqueConstraint(fields=["monitor", "region"], name="monitor_region_once")]

    def __str__(self) -> str:
        return f"monitor {self.monitor_id} from {self.region}: {self.status}"


class RegionWorker(models.Model):
    """A worker or agent process of a region, as its last heartbeat (or recorded result) showed it."""

    region = models.CharField(max_length=32)
    worker = models.CharField(max_length=255, help_text="The process's hostname (Celery's node name).")
    last_seen = models.DateTimeField()
    in_flight = models.PositiveIntegerField(default=0, help_text="Probes it was running then.")
    version = models.CharField(max_length=32, blank=True, default="")

    class Meta:
        ordering = ["region", "worker"]
        constraints = [models.UniqueConstraint(fields=["region", "worker"], name="region_worker_once")]
        indexes = [models.Index(fields=["last_seen"])]

    def __str__(self) -> str:
        return f"{self.worker} in {self.region}"


class IssuedTask(models.Model):
    """A Celery task id handed to a user, so /tasks/{id}/ answers only its owner (and 404 otherwise)."""

    task_id = models.CharField(max_length=64, unique=True)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="issued_tasks")
    monitor = models.ForeignKey(Monitor, on_delete=models.SET_NULL, null=True, related_name="issued_tasks")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.task_id


class EventKind(models.TextChoices):
    TLS_EXPIRING = "tls.expiring"


class MonitorEvent(models.Model):
    """Something to tell the owner about, once: the unique key makes a repeat a no-op."""

    monitor = models.ForeignKey(Monitor, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=32, choices=EventKind.choices)
    # What makes the event "the same one again": for tls.expiring, the certificate's fingerprint.
    key = models.CharField(max_length=128)
    data = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["monitor", "kind", "key"], name="monitor_event_once")]

    def __str__(self) -> str:
        return f"{self.kind} for monitor {self.monitor_id}"
