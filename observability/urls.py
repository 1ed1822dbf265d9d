from __future__ import annotations

from django.urls import re_path

from observability import views

urlpatterns = [
    re_path(r"^healthz/?$", views.healthz, name="healthz"),
    re_path(r"^metrics/?$", views.prometheus_metrics, name="metrics"),
]
