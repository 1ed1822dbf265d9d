"""The live dashboard: server-rendered pages whose scripts keep them current."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import NoReverseMatch, reverse
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_GET

from agents.models import AIAgent
from agents.services import AGENT_NOT_FOUND, visible_agents
from web.dashboard import state


def _admin_change_url(agent: AIAgent) -> str | None:
    # Only staff can use the admin, and only once the agent admin is registered.
    try:
        return reverse("admin:agents_aiagent_change", args=[agent.pk])
    except NoReverseMatch:
        return None


@require_GET
@login_required
@ensure_csrf_cookie  # the scripts send it back in X-CSRFToken on every API change
def dashboard(request: HttpRequest) -> HttpResponse:
    data = state.dashboard_state(request.user)
    return render(
        request,
        "dashboard/index.html",
        {
            "state": data,
            "agents": data["agents"],
            "scheduler": data["scheduler"],
            "csrf_cookie_name": settings.CSRF_COOKIE_NAME,
        },
    )


@require_GET
@login_required
@ensure_csrf_cookie
def agent_detail(request: HttpRequest, agent_id: uuid.UUID) -> HttpResponse:
    # Foreign and unknown agents look the same, as in the API.
    agent = visible_agents(request.user).filter(pk=agent_id).first()
    if agent is None:
        raise Http404(AGENT_NOT_FOUND)
    data = state.agent_state(agent)
    history = data["sessions"][: data["pageSize"]]
    return render(
        request,
        "dashboard/agent.html",
        {
            "state": data,
            "agent": data["agent"],
            "schedule": data["schedule"],
            "history": history,
            "admin_url": _admin_change_url(agent) if request.user.is_staff else None,
            "csrf_cookie_name": settings.CSRF_COOKIE_NAME,
        },
    )


class LoginView(auth_views.LoginView):
    """Sign-in for everyone who manages agents (the admin's form admits staff only)."""

    template_name = "dashboard/login.html"
    redirect_authenticated_user = True

    def get_default_redirect_url(self) -> str:
        return reverse("dashboard:index")


class LogoutView(auth_views.LogoutView):
    def get_default_redirect_url(self) -> str:
        return reverse("dashboard:login")
