from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from lookout.monitors import services
from lookout.monitors.models import Monitor, ProbeResult


@admin.register(Monitor)
class MonitorAdmin(admin.ModelAdmin):
    """Read-only but for pause/resume: changes go through the API, whose services keep schedules in step."""

    list_display = ["id", "name", "url", "owner", "interval", "cron", "status", "last_checked_at"]
    list_filter = ["status", "enabled"]
    search_fields = ["name", "url", "owner__username"]
    actions = ["pause", "resume"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Monitor | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Monitor | None = None) -> bool:
        return False

    @admin.action(description="Pause the selected monitors", permissions=["view"])
    def pause(self, request: HttpRequest, queryset: QuerySet[Monitor]) -> None:
        for monitor in queryset:
            services.monitor_pause(monitor=monitor)

    @admin.action(description="Resume the selected monitors", permissions=["view"])
    def resume(self, request: HttpRequest, queryset: QuerySet[Monitor]) -> None:
        for monitor in queryset:
            services.monitor_resume(monitor=monitor)


@admin.register(ProbeResult)
class ProbeResultAdmin(admin.ModelAdmin):
    list_display = ["id", "monitor", "checked_at", "success", "status_code", "response_time_ms"]
    list_filter = ["success"]
    list_select_related = ["monitor"]
    raw_id_fields = ["monitor"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: ProbeResult | None = None) -> bool:
        return False
