from csp.decorators import csp_update
from django.contrib import admin
from django.urls import include, path
from django_prometheus import exports
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView

from core.health import health

# Swagger UI and Redoc inject styles and start a blob worker; only their pages get those sources.
_docs_csp = csp_update({"style-src": ["'self'", "'unsafe-inline'"], "worker-src": ["'self'", "blob:"]})

api_v1 = [
    path("", include("accounts.api.urls")),
    path("", include("projects.api.urls")),
    path("", include("training.api.urls")),
    path("", include("nodes.api.urls")),
    path("", include("nodes.protocol.urls")),
    path("", include("budgets.api.urls")),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", _docs_csp(SpectacularSwaggerSplitView.as_view(url_name="schema")), name="swagger-ui"),
    path("redoc/", _docs_csp(SpectacularRedocView.as_view(url_name="schema")), name="redoc"),
]

urlpatterns = [
    path("api/v1/", include(api_v1)),
    path("health", health, name="health"),
    path("health/", health),
    path("metrics", exports.ExportToDjangoView, name="prometheus-metrics"),
    path("admin/", admin.site.urls),
    path("", include("accounts.urls")),
    path("", include("training.urls")),
    path("", include("projects.urls")),
    path("", include("budgets.urls")),
    path("", include("nodes.urls")),
]

handler400 = "core.views.bad_request"
handler403 = "core.views.permission_denied"
handler404 = "core.views.not_found"
handler500 = "core.views.server_error"

admin.site.site_header = "Pollen administration"
admin.site.site_title = "Pollen admin"
