from django.urls import include, path
from rest_framework.routers import DefaultRouter

from lookout.monitors.api import views

router = DefaultRouter()
router.register("monitors", views.MonitorViewSet, basename="monitor")
router.register("results", views.ResultViewSet, basename="result")

urlpatterns = [
    path("auth/token/", views.TokenView.as_view(), name="auth-token"),
    path("tasks/<str:task_id>/", views.TaskView.as_view(), name="task-detail"),
    path("", include(router.urls)),
]
