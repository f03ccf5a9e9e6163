from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

# Django's own errors (unknown route, bad Host, body too large, unexpected exception) in the API's error format.
handler400 = "lookout.api.error_views.bad_request"
handler403 = "lookout.api.error_views.permission_denied"
handler404 = "lookout.api.error_views.page_not_found"
handler500 = "lookout.api.error_views.server_error"

urlpatterns = [
    path("", RedirectView.as_view(url="/api/v1/docs/", permanent=False)),
    path("admin/", admin.site.urls),
    path("api/v1/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/v1/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("api/v1/auth/", include("rest_framework.urls")),
    path("api/v1/", include("lookout.accounts.api.urls")),
    path("api/v1/", include("lookout.monitors.api.urls")),
    path("api/v1/", include("lookout.alerting.api.urls")),
    path("api/v1/", include("lookout.regions.api.urls")),
    path("api/v1/", include("lookout.stats.api.urls")),
    path("api/v1/", include("lookout.scheduling.api.urls")),
]
