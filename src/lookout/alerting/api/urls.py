from django.urls import include, path
from rest_framework.routers import SimpleRouter

from lookout.alerting.api import views

router = SimpleRouter()  # the API root is the monitors router's
router.register("channels", views.ChannelViewSet, basename="channel")
router.register("incidents", views.IncidentViewSet, basename="incident")
router.register("notifications", views.NotificationViewSet, basename="notification")
router.register("maintenance-windows", views.MaintenanceWindowViewSet, basename="maintenance-window")

urlpatterns = [path("", include(router.urls))]
