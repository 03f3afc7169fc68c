"""The HTTP client import adapters use: timeouts, retries with backoff, no secrets in errors."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
from django.conf import settings

from lists.sources.errors import SourceError

RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


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
        self._client = httpx.Client(timeout=self.timeout, follow_redirects=False)

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
        """The response of a successful (2xx) GET; raises SourceError once retries are spent."""
        last_error = ""
        code = "http_error"
        for attempt in range(1, self.attempts + 1):
            try:
                response = self._client.get(url, params=params, headers=headers, auth=auth)
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
