"""API-key authentication, scope checks and per-key throttling for the REST API.

A key resolves to its organisation; :class:`hub.api_base.OrgAPIView` then opens that organisation's
django-scopes scope around the handler, so tenant-owned queries are filtered to it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

import redis
from django.conf import settings
from redis.commands.core import Script
from rest_framework import authentication, exceptions, permissions, throttling
from rest_framework.request import Request

from hub.errors import ServiceError
from hub.lib.client_ip import client_ip
from hub.models import ApiKey
from hub.services import api_key_authenticate

if TYPE_CHECKING:
    from rest_framework.views import APIView


class ApiKeyRefusedError(ServiceError, exceptions.AuthenticationFailed):
    """A key the service refused with a reason of its own (``key_expired``).

    A ServiceError, so the client gets that code, message and details; an AuthenticationFailed,
    so DRF answers 401 with ``WWW-Authenticate`` like any other failed authentication.
    """

    status_code = 401

    def __init__(self, error: ServiceError) -> None:
        ServiceError.__init__(self, error.code, error.message, error.details, status=401)
        self.detail = exceptions.ErrorDetail(error.message, error.code)


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
        try:
            key = api_key_authenticate(parts[1], also=getattr(view, "key_lookup_also", ""))
        except ServiceError as error:  # an expired key
            raise ApiKeyRefusedError(error) from error
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


# Adds a process's count to the current window's counter (which lives two windows) and what it
# still held of the previous window to that one's, and reads both, in one command.
_COUNT_SCRIPT = """
local function add(key, n)
  local count = redis.call('INCRBY', key, n)
  if count == n then redis.call('EXPIRE', key, ARGV[1]) end
  return count
end
local earlier
if tonumber(ARGV[3]) > 0 then
  earlier = add(KEYS[2], tonumber(ARGV[3]))
else
  earlier = tonumber(redis.call('GET', KEYS[2])) or 0
end
return {add(KEYS[1], tonumber(ARGV[2])), earlier}
"""


@cache
def _count_script() -> Script:
    """This process's Redis connection pool (the cache's server) with the counting script."""
    return redis.Redis.from_url(settings.CACHES["default"]["LOCATION"]).register_script(
        _COUNT_SCRIPT
    )


SYNC_SECONDS = 0.1
"""The longest a process counts a key's requests by itself before adding them to Redis."""
LOCAL_SHARE = 0.01
"""The share of a key's rate a process may count by itself between two additions to Redis."""
NEAR = 0.9
"""Once the count a process knows comes within this share of the limit, every request is added
to Redis at once, so the limit holds exactly (to within LOCAL_SHARE per other process)."""


@dataclass
class _Tally:
    """What this process knows of one key's current window."""

    window: int
    synced: int  # the window's count in Redis (every process's) at the last addition
    earlier: int  # the previous window's count then
    synced_at: float
    unsynced: int = 0  # requests allowed here since


_tallies: dict[str, _Tally] = {}
_tallies_lock = threading.Lock()
_MAX_TALLIES = 10_000


class ClientIpThrottleMixin:
    """Identifies a request without an API key by hub.lib.client_ip.

    DRF's own ``SimpleRateThrottle.get_ident`` believes ``X-Forwarded-For`` from any client, so
    a client could pick its own bucket, or fill another's; the resolver reads it only from
    HASHHUB_TRUSTED_PROXIES.
    """

    def get_ident(self, request: Request) -> str:
        return client_ip(request) or ""


class ApiKeyThrottle(ClientIpThrottleMixin, throttling.SimpleRateThrottle):
    """Requests per key (rate ``api_key``), so one integration cannot starve the others.

    A sliding-window counter: one Redis counter per key and window, and the previous window's
    count weighted by how much of it still lies within the last ``duration`` seconds. DRF's own
    throttle keeps every request's timestamp in one cached list, which at a thousand requests a
    second means unpickling and re-pickling tens of thousands of floats on every call.

    Far below its limit, a busy key's requests are counted in the process and added to Redis in
    batches (at least every ``SYNC_SECONDS``, and every ``LOCAL_SHARE`` of the rate), which
    spares most requests the Redis round trip; near the limit every request goes to Redis.
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
        position, into = divmod(now, self.duration)
        window, weight = int(position), 1 - into / self.duration
        with _tallies_lock:
            tally = _tallies.get(key)
            pending = late = 0
            if tally is not None and tally.window == window - 1:
                # Counted here in the window just ended: they still weigh on this one.
                late, tally.unsynced = tally.unsynced, 0
            elif tally is not None and tally.window == window:
                known = tally.synced + tally.unsynced + 1 + tally.earlier * weight
                if (
                    now - tally.synced_at < SYNC_SECONDS
                    and tally.unsynced < int(self.num_requests * LOCAL_SHARE)
                    and known <= NEAR * self.num_requests
                ):
                    # Far from the limit: counted here, added to Redis with a later request.
                    tally.unsynced += 1
                    return True
                pending, tally.unsynced = tally.unsynced, 0
        # One round trip: add this request and those counted here since the last addition,
        # keep the counters two windows, read the previous window's count.
        current, previous = f"{key}:{window}", f"{key}:{window - 1}"
        count, earlier = _count_script()(
            keys=[current, previous], args=[2 * self.duration, pending + 1, late]
        )
        with _tallies_lock:
            if len(_tallies) >= _MAX_TALLIES:
                for stale in [k for k, t in _tallies.items() if t.window < window]:
                    del _tallies[stale]
            tally = _tallies.get(key)
            if tally is None or tally.window != window:
                _tallies[key] = _Tally(window, count, earlier, now)
            else:  # other threads may have counted meanwhile: keep theirs
                tally.synced, tally.earlier, tally.synced_at = count, earlier, now
        if count + earlier * weight <= self.num_requests:
            return True
        self._wait = self.duration - into
        return False

    def wait(self) -> float | None:
        return getattr(self, "_wait", None)
