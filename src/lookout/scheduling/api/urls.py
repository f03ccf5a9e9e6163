from django.urls import include, path
from rest_framework.routers import SimpleRouter

from lookout.scheduling.api import views

router = SimpleRouter()
router.register("periodic-tasks", views.PeriodicTaskViewSet, basename="periodic-task")

urlpatterns = [path("", include(router.urls))]
