"""The HTTP client import adapters use: timeouts, retries with backoff, no secrets in errors.

Every connection goes through the address guard (lists.sources.guard): the host is resolved when
the connection is made, every address checked, and the connection made to the checked address
(TLS still verifies the URL's host name), so a DNS answer that changed since the URL was saved
cannot point a fetch inside. Environment proxies are not used: a proxy would hide the address
actually reached. A request that carries a credential (basic auth, or any header beyond the
plain ones) is refused over plain http unless HASHHUB_SOURCE_ALLOWED_HOSTS names the host.
"""

from __future__ import annotations

import random
import time
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import httpcore
import httpx
from django.conf import settings

from hub.lib import netguard
from lists.sources import guard
from lists.sources.errors import SourceError

RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
# Headers that never carry a credential; any other header of a request counts as one.
PLAIN_HEADERS = frozenset({"accept", "accept-encoding", "accept-language", "user-agent"})


class GuardedBackend(httpcore.NetworkBackend):
    """Opens TCP connections only to addresses the guard passed, resolving at connect time."""

    def __init__(self, allowance: netguard.Allowance) -> None:
        self.allowance = allowance
        self._plain = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        # Raises netguard.AddressRefusedError, which httpx passes through unchanged.
        address = netguard.checked_addresses(host, port, self.allowance)[0]
        return self._plain.connect_tcp(
            str(address), port, timeout, local_address, typing.cast(Any, socket_options)
        )

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.NetworkStream:
        raise netguard.AddressRefusedError("not_allowed", path, "it is a local socket")


class GuardedTransport(httpx.HTTPTransport):
    """httpx's transport, its connection pool opening connections through GuardedBackend."""

    def __init__(self, allowance: netguard.Allowance) -> None:
        super().__init__(trust_env=False)
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            network_backend=GuardedBackend(allowance),
        )


class Http:
    """GET with a timeout, retrying connection errors, timeouts and 5xx/429 with backoff.

    ``sleep`` is injectable so tests can run the backoff without waiting. A final failure raises
    lists.sources.errors.SourceError with ``auth_failed`` (401/403), ``timeout`` or ``http_error``.
    """

    def __init__(
        self,
        *,
        timeout: float | None = None,
        attempts: int | None = None,
        backoff: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.timeout = timeout if timeout is not None else settings.HASHHUB_SOURCE_HTTP_TIMEOUT
        self.attempts = attempts if attempts is not None else settings.HASHHUB_SOURCE_HTTP_ATTEMPTS
        self.backoff = backoff if backoff is not None else settings.HASHHUB_SOURCE_HTTP_BACKOFF
        self.sleep = sleep
        self.allowance = guard.allowance()
        self._client = httpx.Client(
            timeout=self.timeout,
            follow_redirects=False,
            transport=GuardedTransport(self.allowance),
            trust_env=False,
        )

    def close(self) -> None:
        self._client.close()

    def get(
        self,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
    ) -> httpx.Response:
        """The response of a successful (2xx) GET; raises SourceError once retries are spent.

        Refused at once, without a request: credentials (``auth``, or a header other than the
        plain ones) over plain http to a host the allow-list does not name
        (``insecure_credentials``), and an address the guard refuses (``address_not_allowed``).
        """
        carries_credentials = auth is not None or any(
            name.lower() not in PLAIN_HEADERS for name in headers or {}
        )
        if carries_credentials:
            guard.credentials_check(url)
        last_error = ""
        code = "http_error"
        for attempt in range(1, self.attempts + 1):
            try:
                response = self._client.get(url, params=params, headers=headers, auth=auth)
            except netguard.AddressRefusedError as refused:
                if refused.code != "unresolvable":
                    raise guard.refused_address(refused.host, refused.detail) from None
                code, last_error = "http_error", f"{refused.host} could not be resolved"
            except httpx.TimeoutException:
                code, last_error = "timeout", f"no answer within {self.timeout:g} s"
            except httpx.HTTPError as error:
                code, last_error = "http_error", f"{type(error).__name__}"
            else:
                if response.status_code in (401, 403):
                    raise SourceError(
                        "auth_failed",
                        f"The upstream refused the credentials (HTTP {response.status_code}).",
                    )
                if response.is_success:
                    return response
                code, last_error = "http_error", f"HTTP {response.status_code}"
                if response.status_code not in RETRY_STATUSES:
                    break
            if attempt < self.attempts:
                delay = self.backoff * 2 ** (attempt - 1)
                self.sleep(delay * random.uniform(0.9, 1.1))  # noqa: S311 - jitter, not crypto
        raise SourceError(code, f"GET {_redact(url)} failed: {last_error}.")


def _redact(url: str) -> str:
    """The URL without query string or user info (either may carry a token)."""
    parsed = httpx.URL(url)
    return str(parsed.copy_with(query=None, userinfo=b""))
