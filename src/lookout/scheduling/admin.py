"""django-celery-beat's PeriodicTask admin, read-only for the tasks that monitors own."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django_celery_beat.admin import PeriodicTaskAdmin
from django_celery_beat.models import PeriodicTask

from lookout.scheduling.schedules import PROBE_TASK


def _monitor_owned(obj: PeriodicTask | None) -> bool:
    return obj is not None and obj.task == PROBE_TASK


class LookoutPeriodicTaskAdmin(PeriodicTaskAdmin):
    def has_change_permission(self, request: HttpRequest, obj: PeriodicTask | None = None) -> bool:
        return not _monitor_owned(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: PeriodicTask | None = None) -> bool:
        return not _monitor_owned(obj) and super().has_delete_permission(request, obj)

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        # Bulk enable/disable/delete would bypass the monitors these tasks are derived from.
        return {}


admin.site.unregister(PeriodicTask)
admin.site.register(PeriodicTask, LookoutPeriodicTaskAdmin)
