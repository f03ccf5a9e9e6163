from typing import Any

from django.conf import settings
from drf_spectacular.utils import OpenApiExample, extend_schema_field, extend_schema_serializer
from rest_framework import serializers
from rest_framework.relations import MANY_RELATION_KWARGS

from lookout.alerting.api.serializers import OwnedPrimaryKeyField
from lookout.alerting.models import Channel
from lookout.api.input import (
    CrontabField,
    RejectUnknownFieldsMixin,
    StrictFloatField,
    StrictIntegerField,
    TimeZoneField,
)
from lookout.api.output import FieldsOnceMixin
from lookout.core.encryption import secret_headers_decrypt
from lookout.monitors.models import (
    HttpMethod,
    MetricsDetail,
    Monitor,
    MonitorEvent,
    MonitorStatus,
    MonitorType,
    ProbeResult,
    RecordType,
)
from lookout.monitors.rules import (
    BOUNDS,
    MAX_CONDITIONS,
    MAX_EXPECTED_STATUSES,
    STATUS_CODE_BOUNDS,
    TIMEOUT_BOUNDS,
)
from lookout.monitors.rules import MAX_LENGTHS as LENGTH
from lookout.monitors.selectors import monitor_regions_status


class _ChannelIdsField(serializers.ManyRelatedField):
    """A monitor's channels read as the ids it keeps (Monitor.channel_ids, loaded for a whole page at once)."""

    def get_attribute(self, instance: Monitor) -> list[int]:
        return instance.channel_ids

    def to_representation(self, iterable: Any) -> list[int]:
        return list(iterable)


class OwnedChannelsField(OwnedPrimaryKeyField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(Channel, **kwargs)

    @classmethod
    def many_init(cls, *args: Any, **kwargs: Any) -> serializers.ManyRelatedField:
        # As DRF's RelatedField.many_init, with the field that reads the kept ids.
        list_kwargs: dict[str, Any] = {"child_relation": cls(*args, **kwargs)}
        list_kwargs.update((key, value) for key, value in kwargs.items() if key in MANY_RELATION_KWARGS)
        return _ChannelIdsField(**list_kwargs)


class RegionStatusSerializer(serializers.Serializer[Any]):
    region = serializers.CharField(help_text="A name of LOOKOUT_REGIONS.")
    status = serializers.ChoiceField(choices=["up", "down", "unknown"],
                                     help_text="Its latest result; unknown: none within two intervals.")
    checked_at = serializers.DateTimeField(allow_null=True, help_text="When it was probed (null: never).")
    response_time_ms = serializers.FloatField(allow_null=True)
    error = serializers.CharField(allow_blank=True)


@extend_schema_serializer(examples=[
    OpenApiExample("HTTP monitor", request_only=True,
                   value={"name": "Homepage", "url": "https://example.com/", "interval": 60}),
    OpenApiExample("Push monitor", request_only=True,
                   value={"name": "Nightly backup", "type": "push", "interval": 86400, "grace": 600}),
])
class MonitorSerializer(FieldsOnceMixin, RejectUnknownFieldsMixin, serializers.ModelSerializer[Monitor]):
    name = serializers.CharField(max_length=LENGTH["name"])
    type = serializers.ChoiceField(choices=MonitorType.choices, default=MonitorType.HTTP,
                                   help_text="Set at creation; cannot change afterwards.")
    url = serializers.CharField(max_length=LENGTH["url"], allow_blank=True, required=False, trim_whitespace=True,
                                help_text="http(s)://…, tcp://host:port, dns://RESOLVER/NAME or dns:///NAME; "
                                          "empty for push monitors.")
    method = serializers.ChoiceField(choices=HttpMethod.choices, default=HttpMethod.GET)
    body = serializers.CharField(max_length=LENGTH["body"], allow_blank=True, required=False, trim_whitespace=False)
    # Bounds from the installation's LOOKOUT_MIN_INTERVAL, checked by the service (lookout.monitors.rules).
    interval = StrictIntegerField(allow_null=True, required=False,
                                  help_text="Seconds between probes: from LOOKOUT_MIN_INTERVAL to 7 days.")
    cron = CrontabField(allow_null=True, required=False)
    timezone = TimeZoneField(required=False, help_text="IANA zone for `cron`.")
    timeout = StrictFloatField(min_value=TIMEOUT_BOUNDS[0], max_value=TIMEOUT_BOUNDS[1], required=False,
                               help_text="Seconds; default 10, never above the interval.")
    expected_status = serializers.ListField(
        child=StrictIntegerField(min_value=STATUS_CODE_BOUNDS[0], max_value=STATUS_CODE_BOUNDS[1]), allow_null=True,
        allow_empty=False, max_length=MAX_EXPECTED_STATUSES, required=False,
        help_text="Accepted status codes; null: any 2xx or 3xx.",
    )
    keyword = serializers.CharField(max_length=LENGTH["keyword"], allow_null=True, allow_blank=True, required=False)
    headers = serializers.DictField(child=serializers.CharField(max_length=LENGTH["header_value"], allow_blank=True),
                                    required=False)
    secret_headers = serializers.DictField(
        child=serializers.CharField(max_length=LENGTH["header_value"], allow_blank=True), required=False,
        write_only=True, help_text="Headers whose values are write-only and encrypted at rest.",
    )
    basic_auth_username = serializers.CharField(max_length=LENGTH["basic_auth_username"], allow_blank=True,
                                                required=False)
    basic_auth_password = serializers.CharField(max_length=LENGTH["basic_auth_password"], allow_blank=True,
                                                required=False, write_only=True, trim_whitespace=False)
    follow_redirects = serializers.BooleanField(required=False)
    max_redirects = StrictIntegerField(min_value=BOUNDS["max_redirects"][0], max_value=BOUNDS["max_redirects"][1],
                                       required=False)
    max_body_bytes = StrictIntegerField(min_value=BOUNDS["max_body_bytes"][0], max_value=BOUNDS["max_body_bytes"][1],
                                        required=False)
    ip_version = serializers.ChoiceField(choices=[4, 6], allow_null=True, required=False)
    verify_tls = serializers.BooleanField(required=False)
    tls_expiry_days = StrictIntegerField(min_value=BOUNDS["tls_expiry_days"][0], max_value=BOUNDS["tls_expiry_days"][1],
                                         required=False,
                                         help_text="Warn when the certificate expires within this many days.")
    conditions = serializers.ListField(child=serializers.CharField(max_length=LENGTH["condition"]),
                                       max_length=MAX_CONDITIONS,
                                       required=False, help_text='e.g. ["[STATUS] == 200", "[BODY].ok == true"]')
    send = serializers.CharField(max_length=LENGTH["send"], allow_blank=True, required=False, trim_whitespace=False)
    expect = serializers.CharField(max_length=LENGTH["expect"], allow_blank=True, required=False, trim_whitespace=False)
    record_type = serializers.ChoiceField(choices=RecordType.choices, required=False)
    expected_answer = serializers.CharField(max_length=LENGTH["expected_answer"], allow_blank=True, required=False)
    grace = StrictIntegerField(min_value=BOUNDS["grace"][0], max_value=BOUNDS["grace"][1], required=False)
    failure_threshold = StrictIntegerField(min_value=BOUNDS["failure_threshold"][0],
                                           max_value=BOUNDS["failure_threshold"][1], required=False,
                                           help_text="Failed probes in a row before the monitor is down (default 2).")
    recovery_threshold = StrictIntegerField(min_value=BOUNDS["recovery_threshold"][0],
                                            max_value=BOUNDS["recovery_threshold"][1], required=False,
                                            help_text="Successful probes in a row before it is up again (default 1).")
    regions = serializers.ListField(
        child=serializers.CharField(max_length=32), required=False, max_length=32,
        help_text="Regions to probe from (names of LOOKOUT_REGIONS); empty or absent: the home region.")
    confirm = StrictIntegerField(min_value=1, allow_null=True, required=False,
                                 help_text="How many of its regions must fail a round before it is down; "
                                           "null: a majority (1 for a single region).")
    metrics = serializers.ListField(
        child=serializers.ChoiceField(choices=MetricsDetail.choices), required=False, max_length=len(MetricsDetail),
        help_text="Per-monitor series beyond the default ones (docs/metrics.md): status, phases, incidents, "
                  "regions. Empty or absent: the default ones alone (at most 5 series).")
    channels = OwnedChannelsField(many=True, required=False,
                                  help_text="Ids of your channels to alert (your default channels are alerted too).")
    push_url = serializers.SerializerMethodField(help_text="push: where the target sends its heartbeats.")
    regions_status = serializers.SerializerMethodField(
        help_text="Each of its regions' latest result ([] for a monitor that names no regions).")
    secret_header_names = serializers.SerializerMethodField()
    basic_auth_password_set = serializers.SerializerMethodField()
    tls_expires_at = serializers.DateTimeField(source="tls_not_after", read_only=True, allow_null=True,
                                               help_text="The certificate's expiry; null without TLS.")
    last_phases = serializers.DictField(child=serializers.FloatField(), read_only=True,
                                        help_text="Milliseconds per phase of the last probe.")

    class Meta:
        model = Monitor
        fields = ["id", "name", "type", "url", "method", "body", "interval", "cron", "timezone", "timeout",
                  "expected_status", "keyword", "headers", "secret_headers", "secret_header_names",
                  "basic_auth_username", "basic_auth_password", "basic_auth_password_set", "follow_redirects",
                  "max_redirects", "max_body_bytes", "ip_version", "verify_tls", "tls_expiry_days", "conditions",
                  "send", "expect", "record_type", "expected_answer", "grace", "failure_threshold",
                  "recovery_threshold", "regions", "confirm", "metrics", "channels", "push_url", "enabled", "status",
                  "regions_status", "last_checked_at", "last_response_time_ms", "last_phases", "tls_expires_at",
                  "created_at", "updated_at"]
        read_only_fields = ["id", "enabled", "status", "last_checked_at", "last_response_time_ms", "created_at",
                            "updated_at"]

    def get_push_url(self, monitor: Monitor) -> str | None:
        if not monitor.push_token:
            return None
        path = f"/api/v1/push/{monitor.push_token}"
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else path

    @extend_schema_field(RegionStatusSerializer(many=True))
    def get_regions_status(self, monitor: Monitor) -> list[dict[str, Any]]:
        return monitor_regions_status(monitor)

    def get_secret_header_names(self, monitor: Monitor) -> list[str]:
        return sorted(secret_headers_decrypt(monitor.secret_headers)) if monitor.secret_headers else []

    def get_basic_auth_password_set(self, monitor: Monitor) -> bool:
        return bool(monitor.basic_auth_password)


class MonitorSummarySerializer(serializers.Serializer[Any]):
    """A monitor in the lean list (GET /monitors/summary/): plain columns of its row, no channels, secrets or
    regions' states (its detail has everything). Reads the dicts of selectors.monitor_summaries."""

    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(read_only=True)
    type = serializers.ChoiceField(choices=MonitorType.choices, read_only=True)
    url = serializers.CharField(read_only=True)
    interval = serializers.IntegerField(allow_null=True, read_only=True)
    cron = serializers.CharField(allow_null=True, read_only=True)
    regions = serializers.ListField(child=serializers.CharField(), read_only=True)
    enabled = serializers.BooleanField(read_only=True)
    status = serializers.ChoiceField(choices=MonitorStatus.choices, read_only=True)
    last_checked_at = serializers.DateTimeField(allow_null=True, read_only=True)
    last_response_time_ms = serializers.FloatField(allow_null=True, read_only=True)
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)

    _TIMES = ("last_checked_at", "created_at", "updated_at")

    def to_representation(self, instance: Any) -> dict[str, Any]:
        # The row's values as they are but times, rendered as DRF's DateTimeField renders them (ISO 8601 in the
        # current time zone, "Z" for UTC): DRF's per-field walk, and its time zone lookup per value, were most
        # of a page's CPU time.
        row = dict(instance)
        zone = self._zone()
        for name in self._TIMES:
            value = row[name]
            if value is not None:
                text = value.astimezone(zone).isoformat()
                row[name] = text[:-6] + "Z" if text.endswith("+00:00") else text
        return row

    def _zone(self) -> Any:
        """The time zone DRF renders times in, looked up once per list (the list shares its child)."""
        zone = getattr(self, "_zone_cached", None)
        if zone is None:
            zone = self._zone_cached = self.fields["created_at"].default_timezone()  # type: ignore[attr-defined]
        return zone


class ProbeResultSerializer(FieldsOnceMixin, serializers.ModelSerializer[ProbeResult]):
    phases = serializers.DictField(child=serializers.FloatField(),
                                   help_text="Milliseconds per phase: dns, connect, tls, processing, transfer.")
    tls = serializers.DictField(allow_null=True, help_text="Certificate facts, when TLS was spoken.")
    region = serializers.SerializerMethodField(help_text="The region that probed.")

    class Meta:
        model = ProbeResult
        fields = ["id", "monitor", "checked_at", "success", "status_code", "response_time_ms", "error", "task_id",
                  "phases", "tls", "failed_condition", "region"]

    def get_region(self, result: ProbeResult) -> str:
        return result.region or settings.LOOKOUT_HOME_REGION  # stored before regions existed: the home region's


class ResultFilterSerializer(serializers.Serializer[Any]):
    monitor = StrictIntegerField(required=False, min_value=1, help_text="Only this monitor's results.")
    success = serializers.BooleanField(required=False, help_text="Only successes (true) or failures (false).")
    since = serializers.DateTimeField(required=False, help_text="Only results checked at or after this time.")
    region = serializers.ChoiceField(choices=settings.LOOKOUT_REGIONS, required=False,
                                     help_text="Only results from this region (a name of LOOKOUT_REGIONS).")


class CheckQueuedSerializer(serializers.Serializer[Any]):
    task_id = serializers.CharField()


class TaskStateSerializer(serializers.Serializer[Any]):
    task_id = serializers.CharField()
    state = serializers.ChoiceField(choices=["PENDING", "STARTED", "SUCCESS", "FAILURE", "RETRY", "REVOKED"])
    result = serializers.JSONField(allow_null=True)
    error = serializers.CharField(allow_null=True)


class PushAcceptedSerializer(serializers.Serializer[Any]):
    ok = serializers.BooleanField()


class MonitorEventSerializer(serializers.ModelSerializer[MonitorEvent]):
    # The model's field name; DRF's metaclass moves declared fields off the class, so it never hides `.data`.
    data = serializers.DictField()  # type: ignore[assignment]

    class Meta:
        model = MonitorEvent
        fields = ["id", "monitor", "kind", "data", "created_at"]


class EventFilterSerializer(serializers.Serializer[Any]):
    monitor = StrictIntegerField(required=False, min_value=1, help_text="Only this monitor's events.")
