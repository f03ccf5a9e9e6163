from django.urls import include, path, re_path
from rest_framework.routers import DefaultRouter

from lookout.monitors.api import views

router = DefaultRouter()
router.register("monitors", views.MonitorViewSet, basename="monitor")
router.register("results", views.ResultViewSet, basename="result")
router.register("events", views.EventViewSet, basename="event")

urlpatterns = [
    path("tasks/<str:task_id>/", views.TaskView.as_view(), name="task-detail"),
    # Without or with a trailing slash: heartbeat URLs get pasted into cron jobs both ways.
    re_path(r"^push/(?P<token>[^/]+)/?$", views.PushView.as_view(), name="push"),
    path("", include(router.urls)),
]
