"""The facade's authentication: the HashHub API key as a Bearer header, or as HTTP Basic.

HMA itself has no authentication of its own (it is run behind the operator's proxy), so its
clients are configured with a base URL only. ``https://KEY@host/hma`` makes every HTTP client send
``Authorization: Basic base64("KEY:")``: the key is taken from the user name or, failing that, the
password. The key then goes through the same lookup, expiry and revocation as API v1's.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from rest_framework import authentication, exceptions
from rest_framework.request import Request

from hub.api_auth import ApiKeyAuthentication, ApiKeyRefusedError
from hub.errors import ServiceError
from hub.models import ApiKey
from hub.services import API_KEY_PREFIX, api_key_authenticate


def _secret_from_basic(credentials: str) -> str:
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise exceptions.AuthenticationFailed(
            "Send the API key as HTTP Basic credentials (https://KEY@host/hma/) or as "
            "'Authorization: Bearer <api key>'."
        ) from None
    user, _, password = decoded.partition(":")
    # The key is the user name (https://KEY@host) or the password (https://any:KEY@host).
    for candidate in (user, password):
        if candidate.startswith(API_KEY_PREFIX):
            return candidate
    return user or password


class HmaKeyAuthentication(ApiKeyAuthentication):
    """``Authorization: Bearer <key>`` as API v1, or ``Authorization: Basic`` holding the key."""

    def authenticate(self, request: Request) -> tuple[Any, ApiKey] | None:
        header = authentication.get_authorization_header(request).decode("latin-1")
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() != "basic":
            return super().authenticate(request)
        secret = _secret_from_basic(credentials)
        view = (request.parser_context or {}).get("view")
        try:
            key = api_key_authenticate(secret, also=getattr(view, "key_lookup_also", ""))
        except ServiceError as error:  # an expired key
            raise ApiKeyRefusedError(error) from error
        if key is None:
            raise exceptions.AuthenticationFailed("The API key is unknown or revoked.")
        return (None, key)

    def authenticate_header(self, request: Request) -> str:
        # A client that waits to be challenged (curl without --basic) then sends the key.
        return 'Basic realm="hashhub"'
