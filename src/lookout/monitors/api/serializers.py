import re
from typing import Any

from django.conf import settings
from rest_framework import serializers

from lookout.monitors.api.fields import StrictFloatField, StrictIntegerField
from lookout.monitors.models import HttpMethod, Monitor, ProbeResult
from lookout.monitors.services import MAX_INTERVAL, MAX_TIMEOUT, timeout_cap
from lookout.scheduling.crontab import crontab_fields, timezone_validate

# RFC 9110 token characters: anything else cannot be sent as a header name.
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
MAX_HEADERS = 50


def _http_url(value: str) -> str:
    if not value.lower().startswith(("http://", "https://")):
        raise serializers.ValidationError("Only http:// and https:// URLs can be monitored.")
    return value


def _headers(value: dict[str, str]) -> dict[str, str]:
    if len(value) > MAX_HEADERS:
        raise serializers.ValidationError(f"At most {MAX_HEADERS} headers.")
    for name, header_value in value.items():
        if not _HEADER_NAME.match(name) or len(name) > 256:
            raise serializers.ValidationError(f"{name!r} is not a valid header name.")
        if "\r" in header_value or "\n" in header_value:
            raise serializers.ValidationError(f"The value of {name!r} contains a line break.")
    return value


class MonitorSerializer(serializers.ModelSerializer):
    name = serializers.CharField(max_length=200)
    url = serializers.URLField(max_length=2048, validators=[_http_url])
    method = serializers.ChoiceField(choices=HttpMethod.choices, default=HttpMethod.GET)
    interval = StrictIntegerField(allow_null=True, required=False, help_text="Seconds between probes.")
    cron = serializers.CharField(max_length=120, allow_null=True, required=False,
                                 help_text="5-field crontab: minute hour day-of-month month day-of-week.")
    timezone = serializers.CharField(max_length=64, required=False, help_text="IANA zone for `cron`.")
    timeout = StrictFloatField(min_value=0.1, max_value=MAX_TIMEOUT, required=False,
                               help_text="Seconds; default 10, never above the interval.")
    expected_status = serializers.ListField(
        child=StrictIntegerField(min_value=100, max_value=599), allow_null=True, allow_empty=False,
        max_length=50, required=False, help_text="Accepted status codes; null: any 2xx or 3xx.",
    )
    keyword = serializers.CharField(max_length=1024, allow_null=True, allow_blank=True, required=False)
    headers = serializers.DictField(child=serializers.CharField(max_length=8192, allow_blank=True),
                                    required=False, validators=[_headers])

    class Meta:
        model = Monitor
        fields = ["id", "name", "url", "method", "interval", "cron", "timezone", "timeout", "expected_status",
                  "keyword", "headers", "enabled", "status", "last_checked_at", "last_response_time_ms",
                  "created_at", "updated_at"]
        read_only_fields = ["id", "enabled", "status", "last_checked_at", "last_response_time_ms", "created_at",
                            "updated_at"]

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)

    def validate_interval(self, value: int | None) -> int | None:
        if value is not None and not settings.LOOKOUT_MIN_INTERVAL <= value <= MAX_INTERVAL:
            raise serializers.ValidationError(
                f"Must be between {settings.LOOKOUT_MIN_INTERVAL} and {MAX_INTERVAL} seconds (7 days)."
            )
        return value

    def validate_cron(self, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            crontab_fields(value)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from exc
        return " ".join(value.split())

    def validate_timezone(self, value: str) -> str:
        try:
            timezone_validate(value)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from exc
        return value

    def validate_keyword(self, value: str | None) -> str | None:
        return value or None

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        instance: Monitor | None = self.instance
        interval = attrs["interval"] if "interval" in attrs else getattr(instance, "interval", None)
        cron = attrs["cron"] if "cron" in attrs else getattr(instance, "cron", None)
        if (interval is None) == (cron is None):
            raise serializers.ValidationError(
                {"interval": ["Set exactly one of `interval` (seconds) or `cron`; send null for the other."]}
            )
        cap = timeout_cap(interval=interval)
        if attrs.get("timeout") is not None and attrs["timeout"] > cap:
            raise serializers.ValidationError(
                {"timeout": [f"Must not exceed {cap:g} seconds (the interval; 60 for crontab monitors)."]}
            )
        return attrs


class ProbeResultSerializer(serializers.ModelSerializer):
    class Meta:
        model = ProbeResult
        fields = ["id", "monitor", "checked_at", "success", "status_code", "response_time_ms", "error", "task_id"]


class ResultFilterSerializer(serializers.Serializer):
    monitor = StrictIntegerField(required=False, min_value=1)
    success = serializers.BooleanField(allow_null=True, default=None)
    since = serializers.DateTimeField(required=False)


class CheckQueuedSerializer(serializers.Serializer):
    task_id = serializers.CharField()


class TaskStateSerializer(serializers.Serializer):
    task_id = serializers.CharField()
    state = serializers.ChoiceField(choices=["PENDING", "STARTED", "SUCCESS", "FAILURE", "RETRY", "REVOKED"])
    result = serializers.JSONField(allow_null=True)
    error = serializers.CharField(allow_null=True)
