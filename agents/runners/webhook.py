from __future__ import annotations

from typing import Any

from core import outbound

from .base import RunContext, RunFailed, Runner, config_error, expect_number

METHODS = {"GET", "POST", "PUT", "PATCH"}
# How much of the answer becomes the session's output summary.
OUTPUT_CHARS = 2000


class WebhookRunner(Runner):
    """Calls an external agent endpoint over HTTP."""

    name = "webhook"
    description = "Calls an HTTP endpoint; a non-2xx answer or a timeout fails the run."

    def validate_configuration(self, configuration: dict[str, Any]) -> dict[str, Any]:
        url = configuration.get("url")
        if not isinstance(url, str):
            raise config_error("url", "An http:// or https:// URL.")
        try:
            outbound.parse_http_url(url)
        except outbound.DestinationRefused as exc:
            raise config_error("url", str(exc)) from None
        method = configuration.get("method", "POST")
        if not isinstance(method, str) or method.upper() not in METHODS:
            raise config_error("method", f"One of {', '.join(sorted(METHODS))}.")
        headers = configuration.get("headers", {})
        if not isinstance(headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
        ):
            raise config_error("headers", "An object of string header names and values.")
        expect_number(configuration, "timeoutSeconds", 30, minimum=0.1, maximum=3600)
        # Resolved last, once everything that needs no lookup has passed. Checked
        # again before every call, because what a name resolves to can change.
        try:
            outbound.resolve_destination(url)
        except outbound.DestinationRefused as exc:
            raise config_error("url", str(exc)) from None
        return configuration

    def run(self, context: RunContext) -> str:
        config = context.configuration
        timeout = config.get("timeoutSeconds", 30)
        try:
            destination = outbound.resolve_destination(config["url"])
        except outbound.DestinationRefused as exc:
            raise RunFailed(f"Webhook URL refused: {exc}") from None
        context.report_progress(0, f"Calling {destination.url.host}")
        try:
            response = destination.send(
                config.get("method", "POST").upper(),
                json={
                    "agentId": context.agent_id,
                    "sessionId": context.session_id,
                    "attempt": context.attempt,
                    "agentName": context.agent_name,
                    "input": context.input,
                },
                headers=config.get("headers") or {},
                timeout=float(timeout),
            )
        except outbound.OutboundTimeout:
            raise RunFailed(f"Webhook timed out after {timeout} s.") from None
        except outbound.OutboundError as exc:
            raise RunFailed(f"Webhook request failed: {exc}") from None
        context.log(
            f"{config.get('method', 'POST').upper()} {destination.url.host} answered "
            f"HTTP {response.status}.",
            level="INFO" if 200 <= response.status < 300 else "ERROR",
        )
        if not 200 <= response.status < 300:
            raise RunFailed(f"Webhook answered HTTP {response.status}.")
        return response.text[:OUTPUT_CHARS]
