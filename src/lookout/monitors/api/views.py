"""Thin API views: validate with a serializer, call a service or selector, render. Domain errors become HTTP
responses in one place (lookout.api.errors)."""

from dataclasses import replace
from typing import Any

from celery.result import AsyncResult
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.authentication import BaseAuthentication
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer
from rest_framework.views import APIView

from lookout.api.owner import request_owner
from lookout.api.pagination import IdKeysetPagination, KeysetPagination
from lookout.api.schema import raises
from lookout.api.throttling import PushThrottle
from lookout.config.celery_app import app as celery_app
from lookout.core.errors import BrokerUnavailable, Refused
from lookout.monitors import selectors, services
from lookout.monitors.api.serializers import (
    CheckQueuedSerializer,
    EventFilterSerializer,
    MonitorEventSerializer,
    MonitorSerializer,
    MonitorSummarySerializer,
    ProbeResultSerializer,
    PushAcceptedSerializer,
    ResultFilterSerializer,
    TaskStateSerializer,
)
from lookout.monitors.models import Monitor, MonitorEvent, ProbeResult
from lookout.monitors.spec import MonitorSpec, monitor_spec
from lookout.probes import push
from lookout.probes.services import probe_check_now


class MonitorViewSet(viewsets.ModelViewSet[Monitor]):
    serializer_class = MonitorSerializer

    def get_queryset(self) -> QuerySet[Monitor]:
        if getattr(self, "swagger_fake_view", False):  # OpenAPI generation: no user, only the model
            return Monitor.objects.none()
        # Another owner's monitor is simply not in the queryset: 404, never 403.
        return selectors.monitor_list(owner=request_owner(self.request))

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        assert page is not None  # the list is always paginated
        selectors.monitor_relations_load(page)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    def paginated_count(self) -> int:
        """The list's `count`: the owner's monitors as the services keep count of them (the list has no
        filters), not count(*) over them."""
        return selectors.monitor_count(owner=request_owner(self.request))

    @extend_schema(responses=MonitorSummarySerializer(many=True))
    @action(detail=False, methods=["get"], serializer_class=MonitorSummarySerializer,
            pagination_class=IdKeysetPagination)
    def summary(self, request: Request) -> Response:
        """Your monitors, lean (a few plain fields each) and by id; follow `next` (a cursor) for the rest. For
        walking thousands of monitors: any page costs the same, and a row costs a fraction of the full list's."""
        rows = self.paginate_queryset(selectors.monitor_summaries(owner=request_owner(request)))
        return self.get_paginated_response(MonitorSummarySerializer(rows, many=True).data)

    def perform_create(self, serializer: BaseSerializer[Monitor]) -> None:
        serializer.instance = services.monitor_create(owner=request_owner(self.request),
                                                      spec=MonitorSpec(**_spec_fields(serializer.validated_data)))

    def perform_update(self, serializer: BaseSerializer[Monitor]) -> None:
        monitor = serializer.instance
        assert monitor is not None  # update() made the serializer around the monitor
        spec = replace(monitor_spec(monitor), **_spec_fields(serializer.validated_data))
        serializer.instance = services.monitor_update(monitor=monitor, spec=spec)

    def perform_destroy(self, instance: Monitor) -> None:
        services.monitor_delete(monitor=instance)

    @extend_schema(request=None, responses=MonitorSerializer)
    @action(detail=True, methods=["post"])
    def pause(self, request: Request, pk: str | None = None) -> Response:
        monitor = services.monitor_pause(monitor=self.get_object())
        return Response(MonitorSerializer(monitor).data)

    @extend_schema(request=None, responses=MonitorSerializer)
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, pk: str | None = None) -> Response:
        monitor = services.monitor_resume(monitor=self.get_object())
        return Response(MonitorSerializer(monitor).data)

    @extend_schema(request=None, responses={202: CheckQueuedSerializer})
    @action(detail=True, methods=["post"])
    @raises(Refused, BrokerUnavailable)
    def check(self, request: Request, pk: str | None = None) -> Response:
        task_id = probe_check_now(monitor=self.get_object())
        return Response({"task_id": task_id}, status=status.HTTP_202_ACCEPTED)


def _spec_fields(validated: dict[str, Any]) -> dict[str, Any]:
    """Serializer output as MonitorSpec fields: channels by id."""
    fields = dict(validated)
    if fields.get("channels") is not None:
        fields["channels"] = [channel.pk for channel in fields["channels"]]
    return fields


@extend_schema(parameters=[ResultFilterSerializer])
class ResultViewSet(mixins.ListModelMixin, viewsets.GenericViewSet[ProbeResult]):
    """Probe results, newest first; follow `next` for older ones (a cursor: millions of rows are not counted)."""

    serializer_class = ProbeResultSerializer
    pagination_class = KeysetPagination

    def get_queryset(self) -> QuerySet[ProbeResult]:
        if getattr(self, "swagger_fake_view", False):
            return ProbeResult.objects.none()
        # A plain dict: DRF reads a missing boolean in a QueryDict as an unticked checkbox (False).
        filters = ResultFilterSerializer(data=self.request.query_params.dict())
        filters.is_valid(raise_exception=True)
        params = filters.validated_data
        return selectors.result_list(owner=request_owner(self.request), monitor_id=params.get("monitor"),
                                     success=params.get("success"), since=params.get("since"),
                                     region=params.get("region"))


@extend_schema(parameters=[EventFilterSerializer])
class EventViewSet(mixins.ListModelMixin, viewsets.GenericViewSet[MonitorEvent]):
    """Events raised once each, such as tls.expiring (once per certificate), newest first."""

    serializer_class = MonitorEventSerializer

    def get_queryset(self) -> QuerySet[MonitorEvent]:
        if getattr(self, "swagger_fake_view", False):
            return MonitorEvent.objects.none()
        filters = EventFilterSerializer(data=self.request.query_params.dict())
        filters.is_valid(raise_exception=True)
        return selectors.event_list(owner=request_owner(self.request), monitor_id=filters.validated_data.get("monitor"))


class PushView(APIView):
    """Heartbeat of a push monitor. The token in the path is the credential."""

    authentication_classes: list[type[BaseAuthentication]] = []
    permission_classes = [AllowAny]
    throttle_classes = [PushThrottle]

    @extend_schema(request=None, responses={200: PushAcceptedSerializer})
    def post(self, request: Request, token: str) -> Response:
        if push.push_receive(token=token) is None:
            raise NotFound("No push monitor has this token.")
        return Response({"ok": True})

    @extend_schema(request=None, responses={200: PushAcceptedSerializer})
    def get(self, request: Request, token: str) -> Response:
        # GET too: cron jobs and scripts ping with `curl URL` more often than with POST.
        return self.post(request, token)


class TaskView(APIView):
    """The state of a task this user was handed (e.g. by check-now), from Celery's result backend."""

    @extend_schema(responses=TaskStateSerializer)
    def get(self, request: Request, task_id: str) -> Response:
        if selectors.issued_task_get(owner=request_owner(request), task_id=task_id) is None:
            raise NotFound("No such task.")
        result: AsyncResult[Any] = AsyncResult(task_id, app=celery_app)
        state: str = result.state  # not only celery-types' five: REVOKED too
        error = None
        if state == "FAILURE":
            error = repr(result.result)
        elif state == "REVOKED":
            error = "The task expired in the queue or was revoked before it ran."
        payload = {"task_id": task_id, "state": state, "result": result.result if state == "SUCCESS" else None,
                   "error": error}
        return Response(TaskStateSerializer(payload).data)
