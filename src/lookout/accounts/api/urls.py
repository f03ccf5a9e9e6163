from django.urls import include, path
from rest_framework.routers import SimpleRouter

from lookout.accounts.api import views

router = SimpleRouter()  # the API root is the monitors router's
router.register("tokens", views.ApiTokenViewSet, basename="token")

urlpatterns = [
    path("auth/token/", views.PasswordExchangeView.as_view(), name="auth-token"),
    path("", include(router.urls)),
]
