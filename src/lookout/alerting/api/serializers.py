from typing import Any

from django.db.models import Model, QuerySet
from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, extend_schema_serializer
from rest_framework import serializers

from lookout.alerting.incidents import incident_duration_seconds
from lookout.alerting.maintenance import MAX_DURATION_SECONDS, window_active
from lookout.alerting.models import (
    AlertEvent,
    Channel,
    ChannelKind,
    Incident,
    MaintenanceWindow,
    Notification,
    NotificationAttempt,
    NotificationState,
)
from lookout.api.input import CrontabField, RejectUnknownFieldsMixin, StrictIntegerField, TimeZoneField
from lookout.monitors.models import Monitor


class OwnedPrimaryKeyField(serializers.PrimaryKeyRelatedField[Model]):
    """A primary key among the requesting user's own rows; anyone else's is "does not exist" (a 400)."""

    def __init__(self, model: type[Model], **kwargs: Any) -> None:
        self.model = model
        super().__init__(queryset=model._default_manager.none(), **kwargs)

    def get_queryset(self) -> QuerySet[Model]:
        request = self.context.get("request")
        if request is None or not request.user.is_authenticated:
            return self.model._default_manager.none()
        return self.model._default_manager.filter(owner=request.user)


@extend_schema_serializer(examples=[
    OpenApiExample("Email", request_only=True,
                   value={"name": "On call", "kind": "email", "address": "oncall@example.com"}),
])
class ChannelSerializer(RejectUnknownFieldsMixin, serializers.ModelSerializer[Channel]):
    kind = serializers.ChoiceField(choices=ChannelKind.choices, help_text="email, webhook or slack; set at creation.")
    name = serializers.CharField(max_length=200)
    address = serializers.CharField(max_length=254, required=False, allow_blank=True,
                                    help_text="email: where alerts go.")
    url = serializers.CharField(max_length=2048, required=False, allow_blank=True,
                                help_text="webhook: the receiver; slack: the incoming-webhook URL.")
    secret = serializers.CharField(max_length=256, required=False, allow_blank=True, write_only=True,
                                   trim_whitespace=False,
                                   help_text="webhook: signs the body (HMAC-SHA256, X-Lookout-Signature). Write-only.")
    secret_set = serializers.SerializerMethodField()
    failing = serializers.SerializerMethodField(help_text="A permanent failure stopped alerts to this channel; "
                                                          "changing it, or a test that gets through, resumes them.")

    class Meta:
        model = Channel
        fields = ["id", "name", "kind", "address", "url", "secret", "secret_set", "is_default", "system_events",
                  "failing", "failing_since", "failing_reason", "created_at", "updated_at"]
        read_only_fields = ["id", "failing_since", "failing_reason", "created_at", "updated_at"]

    def get_secret_set(self, channel: Channel) -> bool:
        return bool(channel.secret)

    def get_failing(self, channel: Channel) -> bool:
        return channel.failing_since is not None


class ChannelTestSerializer(serializers.Serializer[Any]):
    delivered = serializers.BooleanField()
    status_code = serializers.IntegerField(allow_null=True)
    error = serializers.CharField(allow_blank=True)
    permanent = serializers.BooleanField(
        help_text="The failure cannot be fixed by retrying: the channel is marked failing.")
    event_id = serializers.CharField()
    notification = serializers.IntegerField()
    duration_ms = serializers.FloatField(allow_null=True)


class IncidentSerializer(serializers.ModelSerializer[Incident]):
    open = serializers.SerializerMethodField()
    duration_seconds = serializers.SerializerMethodField(help_text="Up to now while the incident is open.")
    regions = serializers.ListField(child=serializers.CharField(), read_only=True,
                                    help_text="A monitor of several regions: those whose failures confirmed it "
                                              "([]: a monitor of one region).")
    regions_total = serializers.IntegerField(read_only=True,
                                             help_text="How many of its regions counted then (0: one region).")

    class Meta:
        model = Incident
        fields = ["id", "monitor", "started_at", "detected_at", "ended_at", "duration_seconds", "open", "cause",
                  "regions", "regions_total", "alerts_deferred"]

    def get_open(self, incident: Incident) -> bool:
        return incident.ended_at is None

    def get_duration_seconds(self, incident: Incident) -> float:
        return round(incident_duration_seconds(incident), 3)


class IncidentFilterSerializer(serializers.Serializer[Any]):
    monitor = StrictIntegerField(required=False, min_value=1, help_text="Only this monitor's incidents.")
    open = serializers.BooleanField(required=False, help_text="Only open (true) or closed (false) incidents.")


class NotificationAttemptSerializer(serializers.ModelSerializer[NotificationAttempt]):
    class Meta:
        model = NotificationAttempt
        fields = ["number", "started_at", "finished_at", "outcome", "status_code", "error", "duration_ms"]


class NotificationSerializer(serializers.ModelSerializer[Notification]):
    payload = serializers.DictField(help_text="What was (or will be) sent, before the channel formats it.")
    attempt_log = NotificationAttemptSerializer(many=True, read_only=True,
                                                help_text="Every attempt, oldest first.")

    class Meta:
        model = Notification
        fields = ["id", "event", "event_id", "channel", "monitor", "incident", "state", "attempts", "due_at",
                  "delivered_at", "last_error", "created_at", "payload", "attempt_log"]


class NotificationFilterSerializer(serializers.Serializer[Any]):
    monitor = StrictIntegerField(required=False, min_value=1, help_text="Only this monitor's notifications.")
    incident = StrictIntegerField(required=False, min_value=1, help_text="Only this incident's notifications.")
    channel = StrictIntegerField(required=False, min_value=1, help_text="Only this channel's notifications.")
    event = serializers.ChoiceField(choices=AlertEvent.choices, required=False)
    state = serializers.ChoiceField(choices=NotificationState.choices, required=False)


@extend_schema_serializer(examples=[
    OpenApiExample("Recurring", request_only=True,
                   value={"name": "Nightly deploys", "cron": "0 3 * * *", "timezone": "Europe/Berlin",
                          "duration_seconds": 1800}),
])
class MaintenanceWindowSerializer(RejectUnknownFieldsMixin, serializers.ModelSerializer[MaintenanceWindow]):
    monitor = OwnedPrimaryKeyField(Monitor, allow_null=True, required=False,
                                   help_text="One of your monitors; null (default): all of them.")
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    starts_at = serializers.DateTimeField(allow_null=True, required=False, help_text="One-off window: its start.")
    ends_at = serializers.DateTimeField(allow_null=True, required=False, help_text="One-off window: its end.")
    cron = CrontabField(allow_null=True, required=False,
                        help_text="Recurring window: when each occurrence starts (5-field crontab).")
    timezone = TimeZoneField(required=False, help_text="IANA zone of `cron` (default UTC).")
    duration_seconds = StrictIntegerField(allow_null=True, required=False, min_value=60,
                                          max_value=MAX_DURATION_SECONDS,
                                          help_text="Recurring window: how long each occurrence lasts.")
    active = serializers.SerializerMethodField(help_text="The window covers the present moment.")

    class Meta:
        model = MaintenanceWindow
        fields = ["id", "name", "monitor", "starts_at", "ends_at", "cron", "timezone", "duration_seconds", "active",
                  "created_at"]
        read_only_fields = ["id", "created_at"]

    def get_active(self, window: MaintenanceWindow) -> bool:
        return window_active(window, now=timezone.now())
