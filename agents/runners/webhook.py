from __future__ import annotations

import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings

from .base import RunContext, RunFailed, Runner, config_error, expect_number

METHODS = {"GET", "POST", "PUT", "PATCH"}


def _is_internal(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    return (
        ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_reserved
        or ip.is_multicast
        or ip.is_unspecified
    )


def check_destination(url: str) -> None:
    """Refuse URLs that lead into the server's own network.

    Checked when the agent is saved and again before every call, because what
    a name resolves to can change.
    """
    host = urlsplit(url).hostname or ""
    if host in settings.AGENT_WEBHOOK_ALLOWED_HOSTS:
        return
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        raise RunFailed(f"Cannot resolve webhook host {host!r}.") from None
    if any(_is_internal(info[4][0]) for info in infos):
        raise RunFailed(
            f"Webhook host {host!r} resolves to an internal address; "
            "list it in AGENT_WEBHOOK_ALLOWED_HOSTS to allow it."
        )


class WebhookRunner(Runner):
    """Calls an external agent endpoint over HTTP."""

    name = "webhook"
    description = "Calls an HTTP endpoint; a non-2xx answer or a timeout fails the run."

    def validate_configuration(self, configuration: dict[str, Any]) -> dict[str, Any]:
        url = configuration.get("url")
        if not isinstance(url, str):
            raise config_error("url", "An http:// or https:// URL.")
        try:
            parts = urlsplit(url)
            host = parts.hostname
        except ValueError:
            raise config_error("url", "Not a valid URL.") from None
        if parts.scheme not in {"http", "https"}:
            raise config_error("url", "An http:// or https:// URL.")
        if not host:
            raise config_error("url", "The URL has no host.")
        method = configuration.get("method", "POST")
        if not isinstance(method, str) or method.upper() not in METHODS:
            raise config_error("method", f"One of {', '.join(sorted(METHODS))}.")
        headers = configuration.get("headers", {})
        if not isinstance(headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
        ):
            raise config_error("headers", "An object of string header names and values.")
        expect_number(configuration, "timeoutSeconds", 30, minimum=0.1, maximum=3600)
        try:
            check_destination(url)
        except RunFailed as exc:
            raise config_error("url", str(exc)) from None
        return configuration

    def run(self, context: RunContext) -> str:
        config = context.configuration
        url = config["url"]
        check_destination(url)
        context.report_progress(0, f"Calling {urlsplit(url).hostname}")
        try:
            response = requests.request(
                config.get("method", "POST").upper(),
                url,
                json={
                    "agentId": context.agent_id,
                    "sessionId": context.session_id,
                    "attempt": context.attempt,
                    "agentName": context.agent_name,
                },
                headers=config.get("headers") or {},
                timeout=float(config.get("timeoutSeconds", 30)),
                # A redirect could lead past the destination check above.
                allow_redirects=False,
            )
        except requests.Timeout:
            raise RunFailed(
                f"Webhook timed out after {config.get('timeoutSeconds', 30)} s."
            ) from None
        except requests.RequestException as exc:
            raise RunFailed(f"Webhook request failed: {exc.__class__.__name__}.") from None
        if not 200 <= response.status_code < 300:
            raise RunFailed(f"Webhook answered HTTP {response.status_code}.")
        return response.text[:2000]
