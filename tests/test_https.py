"""HTTPS=1: one switch for a deployment behind TLS, clean under `check --deploy`."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys

import pytest
import requests

from tests.processes import ROOT, child_env, start_daphne

pytestmark = pytest.mark.integration

DEPLOYMENT = {
    "DEBUG": "0",
    # check --deploy wants 50 characters or more, of 5 different ones at least.
    "SECRET_KEY": secrets.token_urlsafe(50),
    "ALLOWED_HOSTS": "neonhub.example",
}


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=child_env(**{**DEPLOYMENT, **env}),
        capture_output=True,
        text=True,
        timeout=60,
    )


def effective_settings(*names: str, **env: str) -> dict:
    code = (
        "import json; from django.conf import settings; "
        f"print(json.dumps({{name: getattr(settings, name, None) for name in {names!r}}}))"
    )
    result = manage("shell", "-c", code, **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.django_db
def test_check_deploy_is_clean_with_https_on():
    result = manage("check", "--deploy", "--fail-level", "WARNING", HTTPS="1")
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


@pytest.mark.django_db
def test_check_deploy_names_what_https_would_turn_on_when_it_is_off():
    result = manage("check", "--deploy", "--fail-level", "WARNING", HTTPS="0")
    assert result.returncode != 0
    for warning in ("W004", "W008", "W012", "W016"):
        assert f"security.{warning}" in result.stderr


@pytest.mark.django_db
def test_https_turns_on_the_redirect_secure_cookies_and_hsts():
    values = effective_settings(
        "SECURE_SSL_REDIRECT",
        "SESSION_COOKIE_SECURE",
        "CSRF_COOKIE_SECURE",
        "SECURE_HSTS_SECONDS",
        "SECURE_HSTS_INCLUDE_SUBDOMAINS",
        "SECURE_HSTS_PRELOAD",
        "SECURE_REDIRECT_EXEMPT",
        HTTPS="1",
    )
    assert values == {
        "SECURE_SSL_REDIRECT": True,
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "SECURE_HSTS_SECONDS": 31_536_000,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
        "SECURE_HSTS_PRELOAD": True,
        "SECURE_REDIRECT_EXEMPT": [r"^healthz/?$", r"^metrics/?$"],
    }


@pytest.mark.django_db
def test_the_hsts_values_can_be_set_from_the_environment():
    values = effective_settings(
        "SECURE_HSTS_SECONDS",
        "SECURE_HSTS_INCLUDE_SUBDOMAINS",
        "SECURE_HSTS_PRELOAD",
        HTTPS="1",
        SECURE_HSTS_SECONDS="3600",
        SECURE_HSTS_INCLUDE_SUBDOMAINS="0",
        SECURE_HSTS_PRELOAD="0",
    )
    assert values == {
        "SECURE_HSTS_SECONDS": 3600,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": False,
        "SECURE_HSTS_PRELOAD": False,
    }


@pytest.mark.django_db
def test_without_https_nothing_is_turned_on():
    values = effective_settings(
        "SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE", "SECURE_HSTS_SECONDS", HTTPS="0"
    )
    assert values == {
        "SECURE_SSL_REDIRECT": False,
        "SESSION_COOKIE_SECURE": False,
        "SECURE_HSTS_SECONDS": 0,
    }


@pytest.mark.django_db
@pytest.mark.parametrize("value", ["X-Forwarded-Proto,https", "HTTP_X_FORWARDED_PROTO"])
def test_a_malformed_proxy_ssl_header_stops_the_process_at_start(value):
    result = manage("check", SECURE_PROXY_SSL_HEADER=value)
    assert result.returncode != 0
    assert "SECURE_PROXY_SSL_HEADER" in result.stderr and repr(value) in result.stderr


@pytest.fixture(scope="module")
def tls_web(django_db_setup):
    daphne, port = start_daphne(HTTPS="1", SECURE_PROXY_SSL_HEADER="HTTP_X_FORWARDED_PROTO,https")
    yield f"http://127.0.0.1:{port}"
    daphne.stop()


def test_plain_http_is_redirected_to_https(tls_web):
    response = requests.get(f"{tls_web}/dashboard/login/", allow_redirects=False, timeout=10)
    assert response.status_code == 301
    # The same host and port, as the client named them.
    assert response.headers["Location"] == tls_web.replace("http:", "https:") + "/dashboard/login/"


@pytest.mark.parametrize("path", ["/healthz", "/metrics"])
def test_health_checks_and_scrapes_over_plain_http_are_not_redirected(tls_web, path):
    response = requests.get(tls_web + path, allow_redirects=False, timeout=10)
    assert response.status_code in (200, 503)


def test_a_request_the_proxy_marks_https_is_served_with_hsts_and_secure_cookies(tls_web):
    response = requests.get(
        f"{tls_web}/dashboard/login/",
        headers={"X-Forwarded-Proto": "https"},
        allow_redirects=False,
        timeout=10,
    )
    assert response.status_code == 200
    assert response.headers["Strict-Transport-Security"] == (
        "max-age=31536000; includeSubDomains; preload"
    )
    assert "; Secure" in response.headers["Set-Cookie"]
