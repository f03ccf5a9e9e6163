from typing import Any

from django.conf import settings
from rest_framework import serializers

from lookout.stats.selectors import WINDOWS


class StatsQuerySerializer(serializers.Serializer[Any]):
    window = serializers.ChoiceField(choices=list(WINDOWS), default="24h", help_text="How far back from now.")
    region = serializers.CharField(required=False, max_length=32,
                                   help_text="Only this region's results (a name of LOOKOUT_REGIONS).")

    def validate_region(self, value: str) -> str:
        # Checked against the settings at request time, not at import: a ChoiceField would freeze them.
        if value not in settings.LOOKOUT_REGIONS:
            raise serializers.ValidationError(
                f"Unknown region {value!r}: the regions are {', '.join(settings.LOOKOUT_REGIONS)}.")
        return value


class ResponseTimeSerializer(serializers.Serializer[Any]):
    avg = serializers.FloatField(allow_null=True)
    p50 = serializers.FloatField(allow_null=True)
    p95 = serializers.FloatField(allow_null=True)
    p99 = serializers.FloatField(allow_null=True)


class MonitorStatsSerializer(serializers.Serializer[Any]):
    monitor = serializers.IntegerField()
    window = serializers.ChoiceField(choices=list(WINDOWS))
    start = serializers.DateTimeField(help_text="The window is [start, end].")
    end = serializers.DateTimeField()
    uptime_percent = serializers.FloatField(allow_null=True, help_text="Share of successful probes (null: none).")
    checks = serializers.IntegerField()
    failures = serializers.IntegerField()
    downtime_seconds = serializers.FloatField(help_text="Time inside incidents within the window.")
    incidents = serializers.IntegerField(help_text="Incidents overlapping the window.")
    response_time_ms = ResponseTimeSerializer(help_text="Successful probes; percentiles from histogram buckets.")
