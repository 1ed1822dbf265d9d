from __future__ import annotations

from django.urls import path

from web.dashboard import views

app_name = "dashboard"

urlpatterns = [
    path("", views.dashboard, name="index"),
    path("agents/<uuid:agent_id>/", views.agent_detail, name="agent"),
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", views.LogoutView.as_view(), name="logout"),
]
