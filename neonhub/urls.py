from __future__ import annotations

from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

handler404 = "web.api.errors.page_not_found"
handler500 = "web.api.errors.server_error"

urlpatterns = [
    path("admin/", admin.site.urls),
    re_path(r"^api/schema/?$", SpectacularAPIView.as_view(), name="schema"),
    re_path(r"^api/docs/?$", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/", include("web.api.urls")),
    path("api-auth/", include("rest_framework.urls")),
    path("dashboard/", include("web.dashboard.urls")),
    path("", include("observability.urls")),
]
