from django.conf import settings
from django.db import models
from django_celery_beat.models import PeriodicTask


class MonitorStatus(models.TextChoices):
    PENDING = "pending"
    UP = "up"
    DOWN = "down"
    PAUSED = "paused"


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
    url = models.URLField(max_length=2048)
    method = models.CharField(max_length=7, choices=HttpMethod.choices, default=HttpMethod.GET)
    interval = models.PositiveIntegerField(null=True, blank=True, help_text="Seconds between probes.")
    # null, not "": "no crontab" is what the interval-xor-cron constraint checks.
    cron = models.CharField(max_length=120, null=True, blank=True, help_text="5-field crontab.")  # noqa: DJ001
    timezone = models.CharField(max_length=64, default="UTC")
    timeout = models.FloatField(help_text="Seconds; never above the interval.")
    expected_status = models.JSONField(null=True, blank=True, help_text="Accepted codes; null: any 2xx/3xx.")
    keyword = models.CharField(max_length=1024, null=True, blank=True)  # noqa: DJ001 (null: no keyword check)
    headers = models.JSONField(default=dict, blank=True)
    enabled = models.BooleanField(default=True)
    status = models.CharField(max_length=16, choices=MonitorStatus.choices, default=MonitorStatus.PENDING)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    last_response_time_ms = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # PROTECT: the schedule is derived from the monitor and only goes away with it (monitor_delete).
    periodic_task = models.OneToOneField(PeriodicTask, on_delete=models.PROTECT, related_name="monitor")

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["owner", "id"])]
        constraints = [
            models.CheckConstraint(
                name="monitor_interval_xor_cron",
                condition=(models.Q(interval__isnull=False, cron__isnull=True)
                           | models.Q(interval__isnull=True, cron__isnull=False)),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.url})"


class ProbeResult(models.Model):
    monitor = models.ForeignKey(Monitor, on_delete=models.CASCADE, related_name="results")
    checked_at = models.DateTimeField(help_text="When the probe started.")
    success = models.BooleanField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response_time_ms = models.FloatField()
    error = models.TextField(blank=True, default="")
    task_id = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        ordering = ["-checked_at", "-id"]
        indexes = [
            models.Index(fields=["monitor", "-checked_at"]),
            models.Index(fields=["checked_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.monitor_id} at {self.checked_at:%Y-%m-%d %H:%M:%S}: {'up' if self.success else 'down'}"


class IssuedTask(models.Model):
    """A Celery task id handed to a user, so /tasks/{id}/ answers only its owner (and 404 otherwise)."""

    task_id = models.CharField(max_length=64, unique=True)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="issued_tasks")
    monitor = models.ForeignKey(Monitor, on_delete=models.SET_NULL, null=True, related_name="issued_tasks")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.task_id
