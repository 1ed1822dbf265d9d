from __future__ import annotations

from django.urls import include, path, re_path
from rest_framework.routers import SimpleRouter

from web.api.views import (
    alerts,
    audit,
    preview,
    schedule_actions,
    schedules,
    sessions,
    slots,
    stats,
)
from web.api.views.agents import AgentViewSet
from web.api.views.auth import TokenRefresh, TokenView


class OptionalSlashRouter(SimpleRouter):
    """Every route answers with and without its trailing slash."""

    def __init__(self) -> None:
        super().__init__()
        self.trailing_slash = "/?"


router = OptionalSlashRouter()
router.register("agents", AgentViewSet, basename="agent")

AGENT = r"agents/(?P<agent_id>[^/]+)"
CHANNEL = r"alert-channels/(?P<channel_id>[^/]+)"
SESSION = r"sessions/(?P<session_id>[^/]+)"

urlpatterns = [
    re_path(r"^auth/token/?$", TokenView.as_view(), name="token"),
    re_path(r"^auth/token/refresh/?$", TokenRefresh.as_view(), name="token-refresh"),
    # Before the router, whose agents/<id> would otherwise claim "scheduler" and "stats".
    re_path(r"^agents/scheduler/status/?$", schedules.scheduler_status, name="scheduler-status"),
    re_path(r"^agents/stats/?$", stats.agents_stats, name="agents-stats"),
    re_path(
        rf"^{AGENT}/schedule/status/?$", schedules.agent_schedule_status, name="schedule-status"
    ),
    re_path(
        rf"^{AGENT}/schedule/resume/?$", schedule_actions.resume_schedule, name="schedule-resume"
    ),
    re_path(rf"^{AGENT}/schedule/?$", schedules.agent_schedule, name="agent-schedule"),
    re_path(rf"^{AGENT}/slots/?$", slots.agent_slots, name="agent-slots"),
    re_path(rf"^{AGENT}/audit/?$", audit.agent_audit, name="agent-audit"),
    re_path(rf"^{AGENT}/alerts/?$", alerts.agent_alert_rules, name="agent-alerts"),
    re_path(r"^alert-channels/?$", alerts.alert_channels, name="alert-channels"),
    re_path(rf"^{CHANNEL}/test/?$", alerts.test_alert_channel, name="alert-channel-test"),
    re_path(rf"^{CHANNEL}/?$", alerts.alert_channel, name="alert-channel"),
    re_path(r"^alerts/?$", alerts.alert_list, name="alerts"),
    re_path(rf"^{AGENT}/stats/?$", stats.agent_stats, name="agent-stats"),
    re_path(r"^schedule/preview/?$", preview.schedule_preview, name="schedule-preview"),
    re_path(rf"^{AGENT}/backfill/?$", schedule_actions.backfill_agent, name="agent-backfill"),
    re_path(rf"^{AGENT}/run/?$", sessions.run_agent, name="agent-run"),
    re_path(rf"^{AGENT}/sessions/?$", sessions.agent_sessions, name="agent-sessions"),
    re_path(rf"^{SESSION}/cancel/?$", sessions.cancel_session, name="session-cancel"),
    re_path(rf"^{SESSION}/logs/?$", sessions.session_logs, name="session-logs"),
    re_path(rf"^{SESSION}/?$", sessions.session_detail, name="session-detail"),
    path("", include(router.urls)),
]
