"""API-key authentication, scope checks and per-key throttling for the REST API.

A key resolves to its organisation; :class:`hub.api_base.OrgAPIView` then opens that organisation's
django-scopes scope around the handler, so tenant-owned queries are filtered to it.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

import redis
from django.conf import settings
from rest_framework import authentication, exceptions, permissions, throttling
from rest_framework.request import Request

from hub.models import ApiKey
from hub.services import api_key_authenticate

if TYPE_CHECKING:
    from rest_framework.views import APIView


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer hh_…`` → (None, ApiKey). There is no user behind an API key."""

    keyword = "bearer"
    # A scalar SQL query answered in the key's lookup round trip (see api_key_authenticate).
    lookup_also = ""

    def authenticate(self, request: Request) -> tuple[Any, ApiKey] | None:
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        parts = header.split()
        if len(parts) != 2 or parts[0].lower() != self.keyword:
            raise exceptions.AuthenticationFailed(
                "Send the key as 'Authorization: Bearer <api key>'."
            )
        key = api_key_authenticate(parts[1], also=self.lookup_also)
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


@cache
def _redis() -> redis.Redis:
    """This process's connection pool to the cache's Redis (the throttle's counters live there)."""
    return redis.Redis.from_url(settings.CACHES["default"]["LOCATION"])


class ApiKeyThrottle(throttling.SimpleRateThrottle):
    """Requests per key (rate ``api_key``), so one integration cannot starve the others.

    A sliding-window counter: one Redis counter per key and window, and the previous window's
    count weighted by how much of it still lies within the last ``duration`` seconds. DRF's own
    throttle keeps every request's timestamp in one cached list, which at a thousand requests a
    second means unpickling and re-pickling tens of thousands of floats on every call.
    """

    scope = "api_key"
    # Set by SimpleRateThrottle.__init__ from the rate ("600/min": 600 requests, 60 seconds).
    num_requests: int
    duration: int

    def get_cache_key(self, request: Request, view: APIView) -> str | None:
        if isinstance(request.auth, ApiKey):
            return f"{settings.CACHES['default']['KEY_PREFIX']}:throttle:key:{request.auth.pk}"
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}

    def allow_request(self, request: Request, view: APIView) -> bool:
        if self.rate is None:
            return True
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        now = self.timer()
        window, into = divmod(now, self.duration)
        current, previous = f"{key}:{int(window)}", f"{key}:{int(window) - 1}"
        # One round trip: count this request, keep the counter two windows, read the last one.
        pipe = _redis().pipeline(transaction=False)
        pipe.incr(current)
        pipe.expire(current, 2 * self.duration)
        pipe.get(previous)
        count, _, earlier = pipe.execute()
        weighted = count + int(earlier or 0) * (1 - into / self.duration)
        if weighted <= self.num_requests:
            return True
        self._wait = self.duration - into
        return False

    def wait(self) -> float | None:
        return getattr(self, "_wait", None)
