"""API-key authentication, scope checks and per-key throttling for the REST API.

A key resolves to its organisation; :class:`hub.api_base.OrgAPIView` then opens that organisation's
django-scopes scope around the handler, so tenant-owned queries are filtered to it.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

import redis
from django.conf import settings
from redis.commands.core import Script
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
        # A view may name a scalar SQL query to answer in the key's lookup round trip
        # (``key_lookup_also``, see api_key_authenticate).
        view = (request.parser_context or {}).get("view")
        key = api_key_authenticate(parts[1], also=getattr(view, "key_lookup_also", ""))
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


# Counts a request in the current window's counter (which lives two windows) and reads the
# previous window's count, in one command.
_COUNT_SCRIPT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return {count, tonumber(redis.call('GET', KEYS[2])) or 0}
"""


@cache
def _count_script() -> Script:
    """This process's Redis connection pool (the cache's server) with the counting script."""
    return redis.Redis.from_url(settings.CACHES["default"]["LOCATION"]).register_script(
        _COUNT_SCRIPT
    )


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
        count, earlier = _count_script()(keys=[current, previous], args=[2 * self.duration])
        weighted = count + earlier * (1 - into / self.duration)
        if weighted <= self.num_requests:
            return True
        self._wait = self.duration - into
        return False

    def wait(self) -> float | None:
        return getattr(self, "_wait", None)
