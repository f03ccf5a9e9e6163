"""Per-monitor rollups of probe results, hourly and daily, so statistics over months read hundreds of rows, not
millions. On PostgreSQL both tables are partitioned (lookout.stats.partitions): hourly rows by day, daily rows by
month, so retention drops whole partitions."""

from django.db import models

from lookout.monitors.models import Monitor
from lookout.stats.buckets import BUCKET_FIELDS


class RollupCounts(models.Model):
    """What a rollup row counts: per monitor, period and region (as ProbeResult stores it: "" is the home region's
    results from before regions existed, and every rollup made before that column)."""

    region = models.CharField(max_length=32, blank=True, default="")
    checks = models.PositiveIntegerField()
    failures = models.PositiveIntegerField()
    # Latency of successful probes: count, sum and a histogram over lookout.stats.buckets.EDGES_MS, so
    # percentiles over any number of periods come from summed buckets, never from averaged percentiles.
    latency_count = models.PositiveIntegerField()
    latency_sum_ms = models.FloatField()
    # One column per bucket (bucket_0 ... bucket_48), NULL when empty: PostgreSQL stores a NULL as one bit, so a
    # row costs its few filled buckets, and SQL sums them over hours or days (a JSON list could be neither).
    for _field in BUCKET_FIELDS:
        locals()[_field] = models.PositiveIntegerField(null=True, blank=True)
    del _field

    class Meta:
        abstract = True

    @property
    def latency_buckets(self) -> list[int]:
        """The histogram as a list of counts per bucket (+ overflow), as lookout.stats.buckets.histogram makes."""
        return [getattr(self, field) or 0 for field in BUCKET_FIELDS]


class ResultRollup(RollupCounts):
    """One monitor's results of one UTC hour from one region."""

    monitor = models.ForeignKey(Monitor, on_delete=models.CASCADE, related_name="rollups")
    hour = models.DateTimeField(help_text="Start of the UTC hour.")

    class Meta:
        ordering = ["monitor", "hour"]
        constraints = [models.UniqueConstraint(fields=["monitor", "hour", "region"],
                                               name="rollup_once_per_monitor_hour_region")]
        indexes = [models.Index(fields=["hour"])]

    def __str__(self) -> str:
        return f"monitor {self.monitor_id} at {self.hour:%Y-%m-%d %H:00}"


class DailyRollup(RollupCounts):
    """One monitor's results of one UTC day from one region: the sum of that day's hourly rollups."""

    monitor = models.ForeignKey(Monitor, on_delete=models.CASCADE, related_name="daily_rollups")
    day = models.DateField(help_text="The UTC day.")

    class Meta:
        ordering = ["monitor", "day"]
        constraints = [models.UniqueConstraint(fields=["monitor", "day", "region"],
                                               name="daily_rollup_once_per_monitor_day_region")]

    def __str__(self) -> str:
        return f"monitor {self.monitor_id} on {self.day:%Y-%m-%d}"


class RollupProgress(models.Model):
    """One row: every hour before rolled_until is rolled up, and every whole UTC day before it has its daily
    rollups. Raw results are never pruned past it."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    rolled_until = models.DateTimeField()

    def __str__(self) -> str:
        return f"rolled up until {self.rolled_until:%Y-%m-%d %H:00}"
