"""Thin API views for channels, incidents, notifications and maintenance windows."""

from dataclasses import replace
from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer

from lookout.alerting import maintenance, selectors, services
from lookout.alerting.api.serializers import (
    ChannelSerializer,
    ChannelTestSerializer,
    IncidentFilterSerializer,
    IncidentSerializer,
    MaintenanceWindowSerializer,
    NotificationFilterSerializer,
    NotificationSerializer,
)
from lookout.alerting.models import AttemptOutcome, Channel, Incident, MaintenanceWindow, Notification
from lookout.api.owner import request_owner

_NO_PUT = ["get", "post", "patch", "delete", "head", "options"]


class ChannelViewSet(viewsets.ModelViewSet[Channel]):
    """Where alerts go: email addresses, webhooks (signed JSON) and Slack incoming webhooks."""

    serializer_class = ChannelSerializer
    http_method_names = _NO_PUT

    def get_queryset(self) -> QuerySet[Channel]:
        if getattr(self, "swagger_fake_view", False):
            return Channel.objects.none()
        return selectors.channel_list(owner=request_owner(self.request))

    def perform_create(self, serializer: BaseSerializer[Channel]) -> None:
        serializer.instance = services.channel_create(owner=request_owner(self.request),
                                                      spec=services.ChannelSpec(**serializer.validated_data))

    def perform_update(self, serializer: BaseSerializer[Channel]) -> None:
        channel = serializer.instance
        assert channel is not None  # update() made the serializer around the channel
        spec = replace(services.channel_spec(channel), **serializer.validated_data)
        serializer.instance = services.channel_update(channel=channel, spec=spec)

    def perform_destroy(self, instance: Channel) -> None:
        services.channel_delete(channel=instance)

    @extend_schema(request=None, responses=ChannelTestSerializer)
    @action(detail=True, methods=["post"])
    def test(self, request: Request, pk: str | None = None) -> Response:
        """Send a test message now and report what the receiver did (recorded under /notifications/)."""
        notification = services.channel_test(channel=self.get_object())
        attempt = notification.attempt_log.all()[0]
        return Response(ChannelTestSerializer({
            "delivered": attempt.outcome == AttemptOutcome.DELIVERED, "status_code": attempt.status_code,
            "error": attempt.error, "permanent": attempt.outcome == AttemptOutcome.PERMANENT,
            "event_id": str(notification.event_id), "notification": notification.pk,
            "duration_ms": attempt.duration_ms,
        }).data)


@extend_schema_view(list=extend_schema(parameters=[IncidentFilterSerializer]))
class IncidentViewSet(viewsets.ReadOnlyModelViewSet[Incident]):
    """Confirmed downtimes, newest first."""

    serializer_class = IncidentSerializer

    def get_queryset(self) -> QuerySet[Incident]:
        if getattr(self, "swagger_fake_view", False):
            return Incident.objects.none()
        if self.action != "list":
            return selectors.incident_list(owner=request_owner(self.request))
        # A plain dict: DRF reads a missing boolean in a QueryDict as an unticked checkbox (False).
        filters = IncidentFilterSerializer(data=self.request.query_params.dict())
        filters.is_valid(raise_exception=True)
        return selectors.incident_list(owner=request_owner(self.request),
                                       monitor_id=filters.validated_data.get("monitor"),
                                       open=filters.validated_data.get("open"))


@extend_schema_view(list=extend_schema(parameters=[NotificationFilterSerializer]))
class NotificationViewSet(viewsets.ReadOnlyModelViewSet[Notification]):
    """Alerts sent (or held, retried, failed) to your channels, with every delivery attempt."""

    serializer_class = NotificationSerializer

    def get_queryset(self) -> QuerySet[Notification]:
        if getattr(self, "swagger_fake_view", False):
            return Notification.objects.none()
        if self.action != "list":
            return selectors.notification_list(owner=request_owner(self.request))
        filters = NotificationFilterSerializer(data=self.request.query_params.dict())
        filters.is_valid(raise_exception=True)
        params = filters.validated_data
        return selectors.notification_list(
            owner=request_owner(self.request), monitor_id=params.get("monitor"), incident_id=params.get("incident"),
            channel_id=params.get("channel"), event=params.get("event"), state=params.get("state"))


class MaintenanceWindowViewSet(mixins.CreateModelMixin, mixins.RetrieveModelMixin, mixins.UpdateModelMixin,
                               mixins.DestroyModelMixin, mixins.ListModelMixin,
                               viewsets.GenericViewSet[MaintenanceWindow]):
    """Windows during which monitors are probed and recorded, but no incident alerts go out."""

    serializer_class = MaintenanceWindowSerializer
    http_method_names = _NO_PUT

    def get_queryset(self) -> QuerySet[MaintenanceWindow]:
        if getattr(self, "swagger_fake_view", False):
            return MaintenanceWindow.objects.none()
        return maintenance.window_list(owner=request_owner(self.request))

    def perform_create(self, serializer: BaseSerializer[MaintenanceWindow]) -> None:
        serializer.instance = maintenance.window_create(
            owner=request_owner(self.request), spec=maintenance.WindowSpec(**_window_fields(serializer.validated_data)))

    def perform_update(self, serializer: BaseSerializer[MaintenanceWindow]) -> None:
        window = serializer.instance
        assert window is not None  # update() made the serializer around the window
        spec = replace(maintenance.window_spec(window), **_window_fields(serializer.validated_data))
        serializer.instance = maintenance.window_update(window=window, spec=spec)

    def perform_destroy(self, instance: MaintenanceWindow) -> None:
        maintenance.window_delete(window=instance)


def _window_fields(validated: dict[str, Any]) -> dict[str, Any]:
    """Serializer output as WindowSpec fields: the monitor by id."""
    fields = dict(validated)
    if fields.get("monitor") is not None:
        fields["monitor"] = fields["monitor"].pk
    return fields
