from typing import Any

from rest_framework import serializers

from lookout.stats.selectors import WINDOWS


class StatsQuerySerializer(serializers.Serializer[Any]):
    window = serializers.ChoiceField(choices=list(WINDOWS), default="24h", help_text="How far back from now.")


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
