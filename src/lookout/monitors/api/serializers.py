import re
from typing import Any

from django.conf import settings
from rest_framework import serializers

from lookout.alerting.api.serializers import OwnedPrimaryKeyField
from lookout.alerting.models import Channel
from lookout.api_input import (
    CrontabField,
    RejectUnknownFieldsMixin,
    StrictFloatField,
    StrictIntegerField,
    TimeZoneField,
)
from lookout.monitors.encryption import secret_headers_decrypt
from lookout.monitors.models import HttpMethod, Monitor, MonitorEvent, MonitorType, ProbeResult, RecordType
from lookout.monitors.services import MAX_INTERVAL, MAX_TIMEOUT, timeout_cap
from lookout.monitors.targets import MAX_BODY_BYTES, MAX_REDIRECTS, target_url_validate
from lookout.probes.conditions import ConditionError, conditions_validate

# RFC 9110 token characters: anything else cannot be sent as a header name.
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
MAX_HEADERS = 50


def _headers(value: dict[str, str]) -> dict[str, str]:
    if len(value) > MAX_HEADERS:
        raise serializers.ValidationError(f"At most {MAX_HEADERS} headers.")
    for name, header_value in value.items():
        if not _HEADER_NAME.match(name) or len(name) > 256:
            raise serializers.ValidationError(f"{name!r} is not a valid header name.")
        if "\r" in header_value or "\n" in header_value:
            raise serializers.ValidationError(f"The value of {name!r} contains a line break.")
    return value


class OwnedChannelsField(OwnedPrimaryKeyField):
    def __init__(self, **kwargs):
        super().__init__(Channel, **kwargs)


class MonitorSerializer(RejectUnknownFieldsMixin, serializers.ModelSerializer):
    name = serializers.CharField(max_length=200)
    type = serializers.ChoiceField(choices=MonitorType.choices, default=MonitorType.HTTP,
                                   help_text="Set at creation; cannot change afterwards.")
    url = serializers.CharField(max_length=2048, allow_blank=True, required=False, trim_whitespace=True,
                                help_text="http(s)://…, tcp://host:port, dns://RESOLVER/NAME or dns:///NAME; "
                                          "empty for push monitors.")
    method = serializers.ChoiceField(choices=HttpMethod.choices, default=HttpMethod.GET)
    body = serializers.CharField(max_length=65536, allow_blank=True, required=False, trim_whitespace=False)
    interval = StrictIntegerField(allow_null=True, required=False, help_text="Seconds between probes.")
    cron = CrontabField(allow_null=True, required=False)
    timezone = TimeZoneField(required=False, help_text="IANA zone for `cron`.")
    timeout = StrictFloatField(min_value=0.1, max_value=MAX_TIMEOUT, required=False,
                               help_text="Seconds; default 10, never above the interval.")
    expected_status = serializers.ListField(
        child=StrictIntegerField(min_value=100, max_value=599), allow_null=True, allow_empty=False,
        max_length=50, required=False, help_text="Accepted status codes; null: any 2xx or 3xx.",
    )
    keyword = serializers.CharField(max_length=1024, allow_null=True, allow_blank=True, required=False)
    headers = serializers.DictField(child=serializers.CharField(max_length=8192, allow_blank=True),
                                    required=False, validators=[_headers])
    secret_headers = serializers.DictField(
        child=serializers.CharField(max_length=8192, allow_blank=True), required=False, write_only=True,
        validators=[_headers], help_text="Headers whose values are write-only and encrypted at rest.",
    )
    basic_auth_username = serializers.CharField(max_length=256, allow_blank=True, required=False)
    basic_auth_password = serializers.CharField(max_length=1024, allow_blank=True, required=False,
                                                write_only=True, trim_whitespace=False)
    follow_redirects = serializers.BooleanField(required=False)
    max_redirects = StrictIntegerField(min_value=0, max_value=MAX_REDIRECTS, required=False)
    max_body_bytes = StrictIntegerField(min_value=1, max_value=MAX_BODY_BYTES, required=False)
    ip_version = serializers.ChoiceField(choices=[4, 6], allow_null=True, required=False)
    verify_tls = serializers.BooleanField(required=False)
    tls_expiry_days = StrictIntegerField(min_value=0, max_value=365, required=False,
                                         help_text="Warn when the certificate expires within this many days.")
    conditions = serializers.ListField(child=serializers.CharField(max_length=500), max_length=20,
                                       required=False, help_text='e.g. ["[STATUS] == 200", "[BODY].ok == true"]')
    send = serializers.CharField(max_length=4096, allow_blank=True, required=False, trim_whitespace=False)
    expect = serializers.CharField(max_length=4096, allow_blank=True, required=False, trim_whitespace=False)
    record_type = serializers.ChoiceField(choices=RecordType.choices, required=False)
    expected_answer = serializers.CharField(max_length=512, allow_blank=True, required=False)
    grace = StrictIntegerField(min_value=0, max_value=MAX_INTERVAL, required=False)
    failure_threshold = StrictIntegerField(min_value=1, max_value=100, required=False,
                                           help_text="Failed probes in a row before the monitor is down (default 2).")
    recovery_threshold = StrictIntegerField(min_value=1, max_value=100, required=False,
                                            help_text="Successful probes in a row before it is up again (default 1).")
    channels = OwnedChannelsField(many=True, required=False,
                                  help_text="Ids of your channels to alert (your default channels are alerted too).")
    push_url = serializers.SerializerMethodField(help_text="push: where the target sends its heartbeats.")
    secret_header_names = serializers.SerializerMethodField()
    basic_auth_password_set = serializers.SerializerMethodField()
    tls_expires_at = serializers.DateTimeField(source="tls_not_after", read_only=True)
    last_phases = serializers.JSONField(read_only=True)

    class Meta:
        model = Monitor
        fields = ["id", "name", "type", "url", "method", "body", "interval", "cron", "timezone", "timeout",
                  "expected_status", "keyword", "headers", "secret_headers", "secret_header_names",
                  "basic_auth_username", "basic_auth_password", "basic_auth_password_set", "follow_redirects",
                  "max_redirects", "max_body_bytes", "ip_version", "verify_tls", "tls_expiry_days", "conditions",
                  "send", "expect", "record_type", "expected_answer", "grace", "failure_threshold",
                  "recovery_threshold", "channels", "push_url", "enabled", "status",
                  "last_checked_at", "last_response_time_ms", "last_phases", "tls_expires_at", "created_at",
                  "updated_at"]
        read_only_fields = ["id", "enabled", "status", "last_checked_at", "last_response_time_ms", "created_at",
                            "updated_at"]

    def get_push_url(self, monitor: Monitor) -> str | None:
        if not monitor.push_token:
            return None
        path = f"/api/v1/push/{monitor.push_token}"
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else path

    def get_secret_header_names(self, monitor: Monitor) -> list[str]:
        return sorted(secret_headers_decrypt(monitor.secret_headers)) if monitor.secret_headers else []

    def get_basic_auth_password_set(self, monitor: Monitor) -> bool:
        return bool(monitor.basic_auth_password)

    def validate_interval(self, value: int | None) -> int | None:
        if value is not None and not settings.LOOKOUT_MIN_INTERVAL <= value <= MAX_INTERVAL:
            raise serializers.ValidationError(
                f"Must be between {settings.LOOKOUT_MIN_INTERVAL} and {MAX_INTERVAL} seconds (7 days)."
            )
        return value

    def validate_keyword(self, value: str | None) -> str | None:
        return value or None

    def validate_conditions(self, value: list[str]) -> list[str]:
        try:
            conditions_validate(value)
        except ConditionError as exc:
            raise serializers.ValidationError(str(exc)) from exc
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        instance: Monitor | None = self.instance

        def current(name: str, default: Any = None) -> Any:
            return attrs[name] if name in attrs else getattr(instance, name, default)

        monitor_type = current("type", MonitorType.HTTP)
        if instance is not None and attrs.get("type", instance.type) != instance.type:
            raise serializers.ValidationError({"type": ["The type of a monitor cannot change; create a new one."]})
        interval, cron = current("interval"), current("cron")
        if (interval is None) == (cron is None):
            raise serializers.ValidationError(
                {"interval": ["Set exactly one of `interval` (seconds) or `cron`; send null for the other."]}
            )
        if monitor_type == MonitorType.PUSH and cron is not None:
            raise serializers.ValidationError({"cron": ["Push monitors expect a heartbeat every `interval`."]})
        cap = timeout_cap(interval=interval)
        if attrs.get("timeout") is not None and attrs["timeout"] > cap:
            raise serializers.ValidationError(
                {"timeout": [f"Must not exceed {cap:g} seconds (the interval; 60 for crontab monitors)."]}
            )
        if instance is None or "url" in attrs:
            try:
                attrs["url"] = target_url_validate(monitor_type, current("url", "") or "")
            except ValueError as exc:
                raise serializers.ValidationError({"url": [str(exc)]}) from exc
        return attrs


class ProbeResultSerializer(serializers.ModelSerializer):
    class Meta:
        model = ProbeResult
        fields = ["id", "monitor", "checked_at", "success", "status_code", "response_time_ms", "error", "task_id",
                  "phases", "tls", "failed_condition"]


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


class PushAcceptedSerializer(serializers.Serializer):
    ok = serializers.BooleanField()


class MonitorEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = MonitorEvent
        fields = ["id", "monitor", "kind", "data", "created_at"]


class EventFilterSerializer(serializers.Serializer):
    monitor = StrictIntegerField(required=False, min_value=1)
