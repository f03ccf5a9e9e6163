"""Staff-only API over periodic tasks (the maintenance tasks' schedules are data too). The services' refusals
become 400/409 in lookout.api.errors."""

from typing import Any

from django.db.models import QuerySet
from django_celery_beat.models import PeriodicTask
from drf_spectacular.utils import extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response

from lookout.api.schema import raises
from lookout.core.errors import Conflict, Refused
from lookout.scheduling import periodic_tasks
from lookout.scheduling.api.serializers import PeriodicTaskSerializer


class PeriodicTaskViewSet(viewsets.ModelViewSet[PeriodicTask]):
    """Every periodic task (staff only). Only allowlisted tasks can be created; a monitor's task changes with it."""

    serializer_class = PeriodicTaskSerializer
    permission_classes = [IsAdminUser]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self) -> QuerySet[PeriodicTask]:
        return periodic_tasks.periodic_task_list()

    @raises(Refused, Conflict)
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        task = periodic_tasks.periodic_task_create(**serializer.validated_data)
        return Response(self.get_serializer(self.get_queryset().get(pk=task.pk)).data, status=status.HTTP_201_CREATED)

    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        task = self.get_object()
        serializer = self.get_serializer(task, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        return self._change(task, dict(serializer.validated_data))

    @raises(Refused)
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        periodic_tasks.periodic_task_delete(task=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses=PeriodicTaskSerializer)
    @action(detail=True, methods=["post"])
    @raises(Refused)
    def enable(self, request: Request, pk: str | None = None) -> Response:
        return self._change(self.get_object(), {"enabled": True})

    @extend_schema(request=None, responses=PeriodicTaskSerializer)
    @action(detail=True, methods=["post"])
    @raises(Refused)
    def disable(self, request: Request, pk: str | None = None) -> Response:
        return self._change(self.get_object(), {"enabled": False})

    def _change(self, task: PeriodicTask, changes: dict[str, Any]) -> Response:
        periodic_tasks.periodic_task_update(task=task, changes=changes)
        return Response(self.get_serializer(self.get_queryset().get(pk=task.pk)).data)
