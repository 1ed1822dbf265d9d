from __future__ import annotations

from datetime import timedelta

import pytest
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", ["/api/auth/token", "/api/auth/token/"])
def test_it_issues_tokens_in_the_envelope(anonymous, user, path):
    response = anonymous.post(
        path, {"username": user.username, "password": PASSWORD}, format="json"
    )
    assert response.status_code == 200
    data = response.json()["data"]
    assert set(data) == {"access", "refresh"}
    assert response.json()["success"] is True


def test_the_access_token_opens_the_api(anonymous, user):
    tokens = anonymous.post(
        "/api/auth/token", {"username": user.username, "password": PASSWORD}, format="json"
    ).json()["data"]
    anonymous.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
    assert anonymous.get("/api/agents").status_code == 200


def test_bad_credentials_are_a_401_envelope(anonymous, user):
    response = anonymous.post(
        "/api/auth/token", {"username": user.username, "password": "wrong"}, format="json"
    )
    assert response.status_code == 401
    assert response.json()["success"] is False
    assert response.json()["error"]


def test_a_missing_field_is_a_400_envelope(anonymous):
    response = anonymous.post("/api/auth/token", {"username": "x"}, format="json")
    assert response.status_code == 400
    assert response.json()["details"]["password"]


def test_it_refreshes_an_access_token(anonymous, user):
    tokens = anonymous.post(
        "/api/auth/token", {"username": user.username, "password": PASSWORD}, format="json"
    ).json()["data"]
    response = anonymous.post(
        "/api/auth/token/refresh", {"refresh": tokens["refresh"]}, format="json"
    )
    assert response.status_code == 200
    assert set(response.json()["data"]) >= {"access"}


def test_a_bad_refresh_token_is_a_401(anonymous):
    response = anonymous.post("/api/auth/token/refresh", {"refresh": "junk"}, format="json")
    assert response.status_code == 401
    assert response.json()["success"] is False


def test_the_token_endpoint_rejects_get(anonymous):
    response = anonymous.get("/api/auth/token")
    assert response.status_code == 405
    assert response.json()["success"] is False


@pytest.mark.parametrize("state", ["deleted", "deactivated"])
def test_a_refresh_token_of_a_user_who_is_gone_is_a_401(anonymous, user, state):
    refresh = str(RefreshToken.for_user(user))
    if state == "deleted":
        user.delete()
    else:
        user.is_active = False
        user.save()
    response = anonymous.post("/api/auth/token/refresh", {"refresh": refresh}, format="json")
    assert response.status_code == 401
    assert response.json() == {
        "success": False,
        "error": "No active account found for the given token.",
    }


def test_an_expired_access_token_is_said_to_have_expired(anonymous, user):
    expired = AccessToken.for_user(user)
    expired.set_exp(lifetime=-timedelta(seconds=1))
    anonymous.credentials(HTTP_AUTHORIZATION=f"Bearer {expired}")
    response = anonymous.get("/api/agents")
    assert response.status_code == 401
    assert response.json() == {
        "success": False,
        "error": "The access token has expired: get a new one from /api/auth/token/refresh.",
    }
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "token",
    ["not-a-token", "refresh", "expired with a forged signature"],
)
def test_a_token_that_is_not_valid_is_not_said_to_have_expired(anonymous, user, token):
    if token == "refresh":
        token = str(RefreshToken.for_user(user))
    elif token == "expired with a forged signature":
        expired = AccessToken.for_user(user)
        expired.set_exp(lifetime=-timedelta(seconds=1))
        header, payload, _ = str(expired).split(".")
        token = f"{header}.{payload}.{'A' * 43}"
    anonymous.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    response = anonymous.get("/api/agents")
    assert response.status_code == 401
    assert response.json() == {"success": False, "error": "The access token is not valid."}


def test_an_expired_refresh_token_is_said_to_have_expired(anonymous, user):
    refresh = RefreshToken.for_user(user)
    refresh.set_exp(lifetime=-timedelta(seconds=1))
    response = anonymous.post("/api/auth/token/refresh", {"refresh": str(refresh)}, format="json")
    assert response.status_code == 401
    assert "expired" in response.json()["error"]
