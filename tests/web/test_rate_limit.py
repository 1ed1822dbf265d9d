"""The API rate limit: the contract's rate format, the 429 answer, and one
count per client shared by every web process through Redis; the token
endpoints' limit per address, which the HTML sign-in forms share."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
import types
import urllib.error
import urllib.request

import pytest
import requests
from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.test import Client
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken

from conftest import client_for
from core.redis import get_redis
from tests.factories import PASSWORD, AgentFactory
from tests.processes import ROOT, child_env, free_port, start_daphne
from web.api import throttling
from web.api.throttling import KEY_PREFIX, Rate, parse_rate

# Inside a window, a fixed moment: 20 s into a minute, so a per-minute window
# has 40 s left, and no test can straddle a window's end.
MOMENT = 1_800_000_000 + 20.0


@pytest.fixture(autouse=True)
def clean_counters():
    def delete() -> None:
        keys = list(get_redis().scan_iter(f"{KEY_PREFIX}*"))
        if keys:
            get_redis().delete(*keys)

    delete()
    yield
    delete()


@pytest.fixture
def clock(monkeypatch) -> types.SimpleNamespace:
    """The throttle's clock, held still at ``MOMENT`` unless a test moves it."""
    fake = types.SimpleNamespace(now=MOMENT)
    monkeypatch.setattr(throttling, "time", types.SimpleNamespace(time=lambda: fake.now))
    return fake


def counter(scope: str, client: str, rate: str, now: float = MOMENT) -> int | None:
    window = int(now // parse_rate(rate).seconds)
    value = get_redis().get(f"{KEY_PREFIX}{scope}:{client}:{window}")
    return None if value is None else int(value)


# --- the rate format ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "requests", "seconds"),
    [
        ("100/15m", 100, 900),
        ("10/m", 10, 60),
        ("5/2h", 5, 7200),
        ("1/d", 1, 86400),
        ("3/s", 3, 1),
        ("7/1minute", 7, 60),
        ("3/2hour", 3, 7200),
        ("5/2hours", 5, 7200),
        ("2/day", 2, 86400),
        ("9/30sec", 9, 30),
        ("100000/M", 100000, 60),
        (" 10 / 15 m ", 10, 900),
    ],
)
def test_it_reads_the_contracts_rate_format(text, requests, seconds):
    assert parse_rate(text) == Rate(requests=requests, seconds=seconds)


@pytest.mark.parametrize(
    "text",
    ["100", "0/m", "10/0m", "x/m", "10/y", "", "   ", "10/", "/m", "-1/m", "10/1.5m", "10/month"],
)
def test_it_refuses_a_rate_it_cannot_read(text):
    with pytest.raises(ValueError, match="Rate"):
        parse_rate(text)


def test_it_refuses_ms_rather_than_reading_it_as_minutes():
    with pytest.raises(ValueError):
        parse_rate("10/ms")


def test_it_refuses_no_rate_at_all():
    with pytest.raises(ValueError):
        parse_rate(None)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["API_RATE_LIMIT", "API_TOKEN_RATE_LIMIT"])
def test_a_bad_rate_setting_stops_the_app_at_start(settings, name):
    setattr(settings, name, "100")
    with pytest.raises(ImproperlyConfigured, match=name):
        apps.get_app_config("web").ready()


@pytest.mark.integration
def test_a_process_with_a_bad_rate_does_not_start():
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=child_env(API_RATE_LIMIT="100/fortnight"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "API_RATE_LIMIT" in result.stderr and "100/fortnight" in result.stderr


# --- the API limit -----------------------------------------------------------------------


def test_over_the_limit_it_answers_429_in_the_envelope_with_retry_after(api, user, settings, clock):
    settings.API_RATE_LIMIT = "3/m"
    for _ in range(3):
        assert api.get("/api/agents").status_code == 200

    response = api.get("/api/agents")

    assert response.status_code == 429
    body = response.json()
    assert set(body) == {"success", "error"}
    assert body["success"] is False
    assert body["error"].endswith(".") and "throttled" in body["error"]
    # 20 s into the minute: the window ends in 40 s.
    assert response["Retry-After"] == "40"
    assert counter("api", f"user:{user.pk}", "3/m") == 4


@pytest.mark.parametrize(
    ("rate", "offset", "expected"),
    [("1/m", 59.5, 1), ("1/m", 0.0, 60), ("1/15m", 100.25, 800), ("1/d", 3600.0, 82800)],
)
def test_retry_after_counts_the_whole_seconds_left_in_the_window(
    api, settings, clock, rate, offset, expected
):
    settings.API_RATE_LIMIT = rate
    seconds = parse_rate(rate).seconds
    clock.now = math.floor(MOMENT / seconds) * seconds + offset
    api.get("/api/agents")
    response = api.get("/api/agents")
    assert response.status_code == 429
    assert int(response["Retry-After"]) == expected


def test_every_method_and_endpoint_counts_against_one_limit(api, user, settings, clock):
    settings.API_RATE_LIMIT = "4/m"
    agent = AgentFactory(owner=user)
    assert api.get(f"/api/agents/{agent.pk}").status_code == 200
    assert (
        api.post("/api/agents", {"name": "x", "agentType": "nope"}, format="json").status_code
        == 400
    )
    assert api.get("/api/agents/00000000-0000-0000-0000-000000000000").status_code == 404
    assert api.get("/api/agents/scheduler/status").status_code == 200
    assert api.delete(f"/api/agents/{agent.pk}").status_code == 429


def test_the_limit_is_per_user(api, user, other_user, settings, clock):
    settings.API_RATE_LIMIT = "2/m"
    api.get("/api/agents")
    api.get("/api/agents")
    assert api.get("/api/agents").status_code == 429

    assert client_for(other_user).get("/api/agents").status_code == 200
    assert counter("api", f"user:{other_user.pk}", "2/m") == 1


def test_a_new_window_starts_a_new_count(api, settings, clock):
    settings.API_RATE_LIMIT = "1/m"
    api.get("/api/agents")
    assert api.get("/api/agents").status_code == 429
    clock.now += 40
    assert api.get("/api/agents").status_code == 200


def test_the_count_is_shared_by_separate_clients_of_one_user(user, settings, clock):
    settings.API_RATE_LIMIT = "3/m"
    # Two clients with tokens of their own, as two browsers or two web
    # processes would see them: the count lives in Redis, not in either.
    first, second = APIClient(), APIClient()
    first.credentials(HTTP_AUTHORIZATION=f"Bearer {AccessToken.for_user(user)}")
    second.credentials(HTTP_AUTHORIZATION=f"Bearer {AccessToken.for_user(user)}")
    assert first.get("/api/agents").status_code == 200
    assert second.get("/api/agents").status_code == 200
    assert counter("api", f"user:{user.pk}", "3/m") == 2
    assert first.get("/api/agents").status_code == 200
    assert second.get("/api/agents").status_code == 429


def test_the_counter_expires_with_its_window(api, user, settings, clock):
    settings.API_RATE_LIMIT = "5/15m"
    api.get("/api/agents")
    window = int(MOMENT // 900)
    ttl = get_redis().ttl(f"{KEY_PREFIX}api:user:{user.pk}:{window}")
    assert 0 < ttl <= 901


def test_an_unreachable_redis_lets_requests_through(api, settings):
    # Failing open: an outage of the limiter must not take the API down.
    settings.API_RATE_LIMIT = "1/m"
    # The limiter's client follows the setting, so this points it at nothing.
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/15"
    assert [api.get("/api/agents").status_code for _ in range(3)] == [200, 200, 200]


# --- the token endpoints ----------------------------------------------------------------


def ask_token(client: APIClient, username: str, password: str, address: str, **headers):
    return client.post(
        "/api/auth/token",
        {"username": username, "password": password},
        format="json",
        REMOTE_ADDR=address,
        **headers,
    )


def test_token_requests_are_limited_per_address_whatever_the_answer(
    anonymous, user, settings, clock
):
    settings.API_TOKEN_RATE_LIMIT = "3/m"
    guesses = [ask_token(anonymous, user.username, f"guess-{i}", "10.0.0.1") for i in range(3)]
    assert [response.status_code for response in guesses] == [401, 401, 401]

    blocked = ask_token(anonymous, user.username, PASSWORD, "10.0.0.1")
    assert blocked.status_code == 429
    assert blocked.json()["success"] is False and "Retry-After" in blocked
    assert counter("token", "ip:10.0.0.1", "3/m") == 4

    # Another address is not affected, and gets its token.
    other = ask_token(anonymous, user.username, PASSWORD, "10.0.0.2")
    assert other.status_code == 200 and other.json()["data"]["access"]


def test_refreshing_a_token_counts_against_the_same_address_limit(anonymous, user, settings, clock):
    settings.API_TOKEN_RATE_LIMIT = "2/m"
    refresh = ask_token(anonymous, user.username, PASSWORD, "10.0.0.3").json()["data"]["refresh"]
    ok = anonymous.post(
        "/api/auth/token/refresh/", {"refresh": refresh}, format="json", REMOTE_ADDR="10.0.0.3"
    )
    assert ok.status_code == 200
    blocked = anonymous.post(
        "/api/auth/token/refresh", {"refresh": refresh}, format="json", REMOTE_ADDR="10.0.0.3"
    )
    assert blocked.status_code == 429


def test_the_token_limit_is_separate_from_the_users_api_limit(api, user, settings, clock):
    settings.API_TOKEN_RATE_LIMIT = "1/m"
    settings.API_RATE_LIMIT = "1/m"
    assert ask_token(APIClient(), user.username, PASSWORD, "10.0.0.4").status_code == 200
    assert api.get("/api/agents").status_code == 200


def test_a_forged_forwarded_for_header_does_not_escape_the_token_limit(
    anonymous, user, settings, clock
):
    settings.API_TOKEN_RATE_LIMIT = "2/m"
    answers = [
        ask_token(anonymous, user.username, "guess", "10.0.0.5", HTTP_X_FORWARDED_FOR=f"1.2.3.{i}")
        for i in range(3)
    ]
    assert answers[-1].status_code == 429


# --- the HTML sign-in forms ---------------------------------------------------------------

SIGN_IN_FORMS = ["/dashboard/login/", "/admin/login/", "/api-auth/login/"]


def sign_in(client: Client, path: str, username: str, password: str, address: str):
    return client.post(path, {"username": username, "password": password}, REMOTE_ADDR=address)


@pytest.mark.parametrize("path", SIGN_IN_FORMS)
def test_a_sign_in_form_answers_429_with_retry_after_past_the_token_limit(
    path, staff_user, settings, clock
):
    settings.API_TOKEN_RATE_LIMIT = "3/m"
    client = Client()
    guesses = [
        sign_in(client, path, staff_user.username, f"guess-{i}", "10.0.1.1") for i in range(3)
    ]
    assert [response.status_code for response in guesses] == [200, 200, 200]

    # Even the right password is refused now: the limit counts attempts, not failures.
    blocked = sign_in(client, path, staff_user.username, PASSWORD, "10.0.1.1")

    assert blocked.status_code == 429
    assert blocked["Content-Type"].startswith("text/plain")
    assert blocked.content.decode() == (
        "Too many sign-in attempts from your address. Try again in 40 seconds.\n"
    )
    assert blocked["Retry-After"] == "40"
    assert "_auth_user_id" not in client.session
    assert counter("token", "ip:10.0.1.1", "3/m") == 4


@pytest.mark.parametrize("path", SIGN_IN_FORMS)
def test_showing_a_sign_in_form_is_not_counted(path, settings, clock):
    settings.API_TOKEN_RATE_LIMIT = "1/m"
    client = Client()
    assert [client.get(path, REMOTE_ADDR="10.0.1.2").status_code for _ in range(3)] == [200] * 3
    assert counter("token", "ip:10.0.1.2", "1/m") is None


def test_the_forms_and_the_token_endpoint_share_one_count_per_address(
    anonymous, staff_user, settings, clock
):
    settings.API_TOKEN_RATE_LIMIT = "4/m"
    client = Client()
    for path in SIGN_IN_FORMS:
        assert sign_in(client, path, staff_user.username, "guess", "10.0.1.3").status_code == 200
    assert ask_token(anonymous, staff_user.username, "guess", "10.0.1.3").status_code == 401

    assert (
        sign_in(client, SIGN_IN_FORMS[0], staff_user.username, PASSWORD, "10.0.1.3").status_code
        == 429
    )
    assert ask_token(anonymous, staff_user.username, PASSWORD, "10.0.1.3").status_code == 429


def test_a_blocked_address_does_not_block_another(user, settings, clock):
    settings.API_TOKEN_RATE_LIMIT = "1/m"
    client = Client()
    sign_in(client, "/dashboard/login/", user.username, "guess", "10.0.1.4")
    assert (
        sign_in(client, "/dashboard/login/", user.username, "guess", "10.0.1.4").status_code == 429
    )

    signed_in = sign_in(Client(), "/dashboard/login/", user.username, PASSWORD, "10.0.1.5")
    assert signed_in.status_code == 302


def test_a_sign_in_refused_by_the_csrf_check_still_counts(user, settings, clock):
    settings.API_TOKEN_RATE_LIMIT = "1/m"
    client = Client(enforce_csrf_checks=True)
    assert (
        sign_in(client, "/dashboard/login/", user.username, "guess", "10.0.1.6").status_code == 403
    )
    assert (
        sign_in(client, "/dashboard/login/", user.username, "guess", "10.0.1.6").status_code == 429
    )


def test_an_unreachable_redis_lets_sign_ins_through(user, settings):
    settings.API_TOKEN_RATE_LIMIT = "1/m"
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/15"
    answers = [
        sign_in(Client(), "/dashboard/login/", user.username, PASSWORD, "10.0.1.7").status_code
        for _ in range(2)
    ]
    assert answers == [302, 302]


# --- across processes ---------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_web_process_and_this_one_share_one_count(user, settings):
    # A window of 1,000 days: a real clock cannot cross its end mid-test.
    rate = settings.API_RATE_LIMIT = "3/1000d"
    daphne, port = start_daphne(API_RATE_LIMIT=rate)
    try:
        token = str(AccessToken.for_user(user))
        local = APIClient()
        local.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        assert local.get("/api/agents").status_code == 200
        assert local.get("/api/agents").status_code == 200

        def remote_get() -> tuple[int, dict, str | None]:
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/api/agents",
                headers={"Authorization": f"Bearer {token}", "Host": "127.0.0.1"},
            )
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    return response.status, json.load(response), None
            except urllib.error.HTTPError as error:
                return error.code, json.load(error), error.headers.get("Retry-After")

        assert remote_get()[0] == 200
        status, body, retry_after = remote_get()
    finally:
        daphne.stop()
    assert status == 429
    assert body["success"] is False
    assert retry_after is not None and int(retry_after) > 0
    assert counter("api", f"user:{user.pk}", rate, now=time.time()) == 4


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_web_process_answers_429_to_sign_in_posts_past_the_limit(staff_user):
    daphne, port = start_daphne(API_TOKEN_RATE_LIMIT="3/1000d")
    try:
        base = f"http://127.0.0.1:{port}"
        browser = requests.Session()
        assert browser.get(f"{base}/dashboard/login/", timeout=10).status_code == 200
        token = browser.cookies["csrftoken"]

        def post(path: str, password: str) -> requests.Response:
            return browser.post(
                base + path,
                data={"username": staff_user.username, "password": password},
                headers={"X-CSRFToken": token},
                allow_redirects=False,
                timeout=10,
            )

        guesses = [post(path, "guess").status_code for path in SIGN_IN_FORMS]
        blocked = post("/dashboard/login/", PASSWORD)
        form_shown = browser.get(f"{base}/admin/login/", timeout=10).status_code
    finally:
        daphne.stop()
    assert guesses == [200, 200, 200]
    assert blocked.status_code == 429
    assert blocked.text.startswith("Too many sign-in attempts from your address.")
    assert 0 < int(blocked.headers["Retry-After"]) <= 1000 * 86400
    assert form_shown == 200
