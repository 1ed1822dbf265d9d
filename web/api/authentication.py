"""Bearer access tokens (simplejwt), with an answer that says why a token is refused."""

from __future__ import annotations

from rest_framework_simplejwt import authentication
from rest_framework_simplejwt.exceptions import ExpiredTokenError, InvalidToken, TokenError
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import Token

TOKEN_EXPIRED = "The access token has expired: get a new one from /api/auth/token/refresh."
TOKEN_NOT_VALID = "The access token is not valid."


class JWTAuthentication(authentication.JWTAuthentication):
    """simplejwt's checks; a genuine token past its expiry is told so.

    simplejwt answers every refused token with "Given token not valid for any
    token type", which leaves a client guessing whether to refresh or to sign
    in again. Expiry is only reported for a token whose signature checked out.
    """

    def get_validated_token(self, raw_token: bytes) -> Token:
        expired = False
        for token_class in api_settings.AUTH_TOKEN_CLASSES:
            try:
                return token_class(raw_token)
            except ExpiredTokenError:
                expired = True
            except TokenError:
                continue
        raise InvalidToken(TOKEN_EXPIRED if expired else TOKEN_NOT_VALID)
