from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

from agents.api.throttling import TokenRateThrottle


@extend_schema(tags=["auth"])
class TokenView(TokenObtainPairView):
    throttle_classes = [TokenRateThrottle]


@extend_schema(tags=["auth"])
class TokenRefresh(TokenRefreshView):
    throttle_classes = [TokenRateThrottle]
