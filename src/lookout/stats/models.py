"""Hourly per-monitor rollups of probe results, so statistics over months read hundreds of rows, not millions."""

from django.db import models

from lookout.monitors.models import Monitor


class ResultRollup(models.Model):
    monitor = models.ForeignKey(Monitor, on_delete=models.CASCADE, related_name="rollups")
    hour = models.DateTimeField(help_text="Start of the UTC hour.")
    # The region of the results rolled up, as ProbeResult stores it: "" is the home region's results from before
    # regions existed (and every rollup made before this column): one row per monitor, hour and region.
    region = models.CharField(max_length=32, blank=True, default="")
    checks = models.PositiveIntegerField()
    failures = models.PositiveIntegerField()
    # Latency of successful probes: count, sum and a histogram over lookout.stats.buckets.EDGES_MS, so
    # percentiles over any number of hours come from summed buckets, never from averaged percentiles.
    latency_count = models.PositiveIntegerField()
    latency_sum_ms = models.FloatField()
    latency_buckets = models.JSONField(help_text="Counts per bucket of lookout.stats.buckets.EDGES_MS (+ overflow).")

    class Meta:
        ordering = ["monitor", "hour"]
        constraints = [models.UniqueConstraint(fields=["monitor", "hour", "region"],
                                               name="rollup_once_per_monitor_hour_region")]
        indexes = [models.Index(fields=["hour"])]

    def __str__(self) -> str:
        return f"monitor {self.monitor_id} at {self.hour:%Y-%m-%d %H:00}"


class RollupProgress(models.Model):
    """One row: every hour before rolled_until is rolled up. Raw results are never pruned past it."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    rolled_until = models.DateTimeField()

    def __str__(self) -> str:
        return f"rolled up until {self.rolled_until:%Y-%m-%d %H:00}"
