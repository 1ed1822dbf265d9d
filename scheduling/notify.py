"""Sending alert notifications to their channels, with retries and backoff.

A notification is claimed before it is sent (a conditional update that
pushes its next try past the send's timeout), so two workers handed the same
one, or a worker and the tick's sweep, send it once. A failed try is
retried after ALERT_RETRY_BASE_SECONDS, doubling up to
ALERT_RETRY_MAX_SECONDS, ALERT_MAX_ATTEMPTS times in all; its error is kept
on the notification and on the channel (``lastError``) until a send to that
channel succeeds. A worker that dies mid-send leaves its claim to expire, and
the sweep hands the notification out again: delivery is at least once.

- webhook: the JSON document below, ``X-NeonHub-Signature: sha256=<hex>``
  (HMAC-SHA256 of the exact body with the channel's secret) and
  ``X-NeonHub-Event``; any 2xx answer is success.
- slack: ``{"text": ...}``, as Slack's incoming webhooks (and Mattermost's)
  take it.
- email: one plain-text message through Django's email backend (EMAIL_URL).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage
from django.db.models import F, Q
from django.utils import timezone

from core import outbound
from core.dates import iso
from observability import metrics
from scheduling import incidents
from scheduling.models import AlertChannel, Incident, Notification

logger = logging.getLogger(__name__)

Kind = AlertChannel.Kind
State = Notification.State
SIGNATURE_HEADER = "X-NeonHub-Signature"
EVENT_HEADER = "X-NeonHub-Event"
TEST_EVENT = "test"
ERROR_LIMIT = 1000
# How many due notifications one sweep hands out; the next sweep takes the rest.
SWEEP_BATCH = 200
# A notification the sweep leaves to the task sent when it was made, unless
# that task has not claimed it after this long.
UNCLAIMED_AFTER = timedelta(seconds=30)


class DeliveryFailed(Exception):
    """A channel did not take a notification; the message is for people."""


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def alert_document(incident: Incident, event: str) -> dict[str, Any]:
    agent = incident.agent
    return {
        "event": f"alert.{event}",
        "alert": {
            "id": str(incident.pk),
            "agentId": str(agent.pk),
            "agentName": agent.name,
            "kind": incident.kind,
            "message": incident.message,
            "openedAt": iso(incident.opened_at),
            "resolvedAt": iso(incident.resolved_at) if incident.resolved_at else None,
            "resolution": incident.resolution,
        },
        "sentAt": iso(timezone.now()),
    }


def test_document(channel: AlertChannel) -> dict[str, Any]:
    return {
        "event": TEST_EVENT,
        "message": f"A test notification of the alert channel {channel.name!r}.",
        "sentAt": iso(timezone.now()),
    }


def _wording(document: dict[str, Any]) -> tuple[str, str]:
    """A subject and a body in words, for email and Slack."""
    alert = document.get("alert")
    if alert is None:
        return "[NeonHub] Test notification", document["message"]
    if document["event"] == "alert.opened":
        subject = f"[NeonHub] {alert['kind']}: {alert['agentName']}"
        body = f"{alert['message']}\n\nOpened {alert['openedAt']}."
    else:
        subject = f"[NeonHub] Resolved {alert['kind']}: {alert['agentName']}"
        body = (
            f"{alert['resolution'] or 'Resolved.'}\n\n"
            f"It was: {alert['message']}\nOpened {alert['openedAt']}, "
            f"resolved {alert['resolvedAt']}."
        )
    return subject, body


def send(channel: AlertChannel, document: dict[str, Any]) -> None:
    """Send ``document`` to ``channel`` now; raises DeliveryFailed."""
    try:
        if channel.kind == Kind.EMAIL:
            subject, text = _wording(document)
            EmailMessage(subject, text, to=[channel.target]).send()
            return
        if channel.kind == Kind.WEBHOOK:
            body = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
            headers = {
                "Content-Type": "application/json",
                SIGNATURE_HEADER: signature(channel.secret, body),
                EVENT_HEADER: document["event"],
            }
        else:
            subject, text = _wording(document)
            body = json.dumps({"text": f"*{subject}*\n{text}"}).encode()
            headers = {"Content-Type": "application/json"}
        response = outbound.send(
            "POST",
            channel.target,
            body=body,
            headers=headers,
            timeout=settings.ALERT_SEND_TIMEOUT,
            max_body_bytes=4096,
        )
    except outbound.OutboundError as exc:
        raise DeliveryFailed(str(exc)) from None
    except Exception as exc:
        # SMTP errors, refused connections, a backend that is misconfigured:
        # all are the channel's failure to report, not the worker's.
        logger.info("Notification to %s failed", channel.pk, exc_info=True)
        raise DeliveryFailed(f"{exc.__class__.__name__}: {exc}"[:ERROR_LIMIT]) from None
    if not 200 <= response.status < 300:
        raise DeliveryFailed(f"The {channel.get_kind_display()} answered HTTP {response.status}.")


def backoff_seconds(failed_tries: int) -> float:
    delay = settings.ALERT_RETRY_BASE_SECONDS * 2 ** max(failed_tries - 1, 0)
    return float(min(delay, settings.ALERT_RETRY_MAX_SECONDS))


def deliver(notification_id: str) -> bool:
    """Send one notification if it is due and nobody else is sending it;
    True if it was sent now."""
    now = timezone.now()
    claimed = Notification.objects.filter(
        pk=notification_id, state=State.PENDING, next_attempt_at__lte=now
    ).update(
        attempts=F("attempts") + 1,
        next_attempt_at=now + timedelta(seconds=settings.ALERT_SEND_TIMEOUT + 60),
    )
    if not claimed:
        return False
    notification = Notification.objects.select_related("incident__agent", "channel").get(
        pk=notification_id
    )
    channel = notification.channel
    try:
        send(channel, alert_document(notification.incident, notification.event))
    except DeliveryFailed as exc:
        _failed(notification, str(exc))
        return False
    done = timezone.now()
    Notification.objects.filter(pk=notification.pk).update(
        state=State.SENT, sent_at=done, last_error=""
    )
    _record_on_channel(channel, None, done)
    return True


def _failed(notification: Notification, error: str) -> None:
    now = timezone.now()
    error = error[:ERROR_LIMIT]
    if notification.attempts >= settings.ALERT_MAX_ATTEMPTS:
        changes: dict[str, Any] = {"state": State.FAILED}
    else:
        changes = {
            "next_attempt_at": now + timedelta(seconds=backoff_seconds(notification.attempts))
        }
    Notification.objects.filter(pk=notification.pk).update(last_error=error, **changes)
    _record_on_channel(notification.channel, error, now)


def _record_on_channel(channel: AlertChannel, error: str | None, at: datetime) -> None:
    if error is None:
        AlertChannel.objects.filter(pk=channel.pk).update(
            last_sent_at=at, last_error="", last_error_at=None
        )
    else:
        AlertChannel.objects.filter(pk=channel.pk).update(last_error=error, last_error_at=at)
    metrics.notification_tried(channel.kind, sent=error is None)


def send_test(channel: AlertChannel) -> str | None:
    """Send a test message now; the error, or None if it arrived."""
    error = None
    try:
        send(channel, test_document(channel))
    except DeliveryFailed as exc:
        error = str(exc)[:ERROR_LIMIT]
    _record_on_channel(channel, error, timezone.now())
    return error


def send_due(now: datetime | None = None) -> int:
    """Hand out the notifications whose retry is due, and any whose first
    task never claimed them; returns how many."""
    now = now or timezone.now()
    ids = [
        str(pk)
        for pk in Notification.objects.filter(state=State.PENDING, next_attempt_at__lte=now)
        .filter(Q(attempts__gt=0) | Q(created_at__lte=now - UNCLAIMED_AFTER))
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:SWEEP_BATCH]
    ]
    incidents.send_notifications(ids)
    return len(ids)
