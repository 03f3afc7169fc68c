"""API-key authentication, scope checks and per-key throttling for the REST API.

A key resolves to its organisation; :class:`hub.api_base.OrgAPIView` then opens that organisation's
django-scopes scope around the handler, so tenant-owned queries are filtered to it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rest_framework import authentication, exceptions, permissions, throttling
from rest_framework.request import Request

from hub.models import ApiKey
from hub.services import api_key_authenticate

if TYPE_CHECKING:
    from rest_framework.views import APIView


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer hh_…`` → (None, ApiKey). There is no user behind an API key."""

    keyword = "bearer"

    def authenticate(self, request: Request) -> tuple[Any, ApiKey] | None:
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        parts = header.split()
        if len(parts) != 2 or parts[0].lower() != self.keyword:
            raise exceptions.AuthenticationFailed(
                "Send the key as 'Authorization: Bearer <api key>'."
            )
        key = api_key_authenticate(parts[1])
        if key is None:
            raise exceptions.AuthenticationFailed("The API key is unknown or revoked.")
        return (None, key)

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="hashhub"'


class HasApiKey(permissions.BasePermission):
    """A valid key is present, and it carries the scope the view declares (``required_scope``)."""

    message = "This API key lacks the scope this endpoint needs."

    def has_permission(self, request: Request, view: APIView) -> bool:
        key = request.auth
        if not isinstance(key, ApiKey):
            raise exceptions.NotAuthenticated(
                "An API key is required: 'Authorization: Bearer <key>'."
            )
        get_required = getattr(view, "get_required_scope", None)
        required = get_required() if get_required else getattr(view, "required_scope", None)
        if required and required not in key.scopes:
            raise exceptions.PermissionDenied(f"This API key lacks the scope '{required}'.")
        return True


class ApiKeyThrottle(throttling.SimpleRateThrottle):
    """Requests per key (rate ``api_key``), so one integration cannot starve the others."""

    scope = "api_key"

    def get_cache_key(self, request: Request, view: APIView) -> str | None:
        if isinstance(request.auth, ApiKey):
            return f"throttle:key:{request.auth.pk}"
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}
