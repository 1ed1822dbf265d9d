"""Opening and resolving incidents, each exactly once, and announcing both.

An incident is opened by inserting it: the unique open incident per agent and
kind (``incident_one_open``) lets exactly one of several workers or beats that
see the same condition do it, and only that one announces it. Resolving is a
conditional update that only one caller wins. The announcement is written in
the same transaction as the change: one ``Notification`` row per channel of
the agent's rule (sent by ``scheduling.notify`` once the transaction commits)
and an ``agent:alert`` / ``agent:alert_resolved`` frame.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable

from django.db import IntegrityError, transaction
from django.utils import timezone

from agents.models import AIAgent, ExecutionSession
from observability import metrics
from realtime import events
from scheduling import pacing
from scheduling.models import AlertChannel, AlertRule, Incident, Notification

Kind = Incident.Kind
Event = Notification.Event

logger = logging.getLogger(__name__)

DELIVER_TASK = "scheduling.deliver_notification"
MESSAGE_LIMIT = 500


def open_incident(
    agent: AIAgent, kind: str, message: str, *, session: ExecutionSession | None = None
) -> Incident | None:
    """Open the agent's ``kind`` incident; None if one is open already."""
    try:
        with transaction.atomic():
            incident = Incident.objects.create(
                agent=agent, kind=kind, message=message[:MESSAGE_LIMIT], session=session
            )
    except IntegrityError:
        return None
    _announce(incident, agent, Event.OPENED)
    metrics.alert_opened(kind)
    return incident


def resolve_incidents(
    agent: AIAgent, kinds: Iterable[str], reason: str, *, session_id: uuid.UUID | None = None
) -> list[Incident]:
    """Resolve the agent's open incidents of these kinds (those of one run, if
    ``session_id`` is given); returns those this call resolved."""
    open_ones = Incident.objects.filter(
        agent_id=agent.pk, kind__in=list(kinds), resolved_at__isnull=True
    )
    if session_id is not None:
        open_ones = open_ones.filter(session_id=session_id)
    resolved = []
    for incident in open_ones:
        if resolve(incident, agent, reason):
            resolved.append(incident)
    return resolved


def resolve(incident: Incident, agent: AIAgent, reason: str) -> bool:
    now = timezone.now()
    won = Incident.objects.filter(pk=incident.pk, resolved_at__isnull=True).update(
        resolved_at=now, resolution=reason[:MESSAGE_LIMIT]
    )
    if not won:
        return False
    incident.resolved_at, incident.resolution = now, reason[:MESSAGE_LIMIT]
    _announce(incident, agent, Event.RESOLVED)
    return True


def channels_of(agent: AIAgent) -> list[AlertChannel]:
    rule = AlertRule.objects.filter(agent_id=agent.pk).first()
    return list(rule.channels.all()) if rule else []


def _announce(incident: Incident, agent: AIAgent, event: str) -> None:
    notifications = Notification.objects.bulk_create(
        Notification(incident=incident, channel=channel, event=event)
        for channel in channels_of(agent)
    )
    if event == Event.OPENED:
        events.emit_alert(incident, agent)
    else:
        events.emit_alert_resolved(incident, agent)
    ids = [str(notification.pk) for notification in notifications]
    if ids:
        transaction.on_commit(lambda: send_notifications(ids))


def send_notifications(ids: Iterable[str]) -> None:
    """Hand notifications to the workers; one the broker does not take now is
    found again by the tick's sweep (``notify.send_due``)."""
    for notification_id in ids:
        try:
            pacing.send_task(DELIVER_TASK, notification_id)
        except Exception:
            logger.warning("Could not hand notifications to the workers", exc_info=True)
            return
