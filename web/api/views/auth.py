from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

from web.api.serializers import TokenObtainPairSerializer, TokenRefreshSerializer
from web.api.throttling import TokenRateThrottle


@extend_schema_view(
    post=extend_schema(
        tags=["auth"],
        operation_id="obtainToken",
        summary="Get an access and a refresh token",
        description="No authorization header needed. Rate-limited per client address "
        "(API_TOKEN_RATE_LIMIT).",
    )
)
class TokenView(TokenObtainPairView):
    serializer_class = TokenObtainPairSerializer
    throttle_classes = [TokenRateThrottle]


@extend_schema_view(
    post=extend_schema(
        tags=["auth"],
        operation_id="refreshToken",
        summary="Get a new access token for a refresh token",
    )
)
class TokenRefresh(TokenRefreshView):
    serializer_class = TokenRefreshSerializer
    throttle_classes = [TokenRateThrottle]
