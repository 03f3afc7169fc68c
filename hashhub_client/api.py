"""The hub's API v1 as the client calls it: httpx, the key as a Bearer header, clear errors.

Every refusal the hub answers is ``{"error": {"code", "message", "details"}}``; it is raised as
:class:`HubError` with those fields, so the command can print the hub's own sentence. A request
answered 429 (``rate_limited``) or 503 with ``Retry-After`` is retried after the wait (at most
``retries`` times, each wait capped at ``MAX_WAIT_SECONDS``); a hub that cannot be reached is a
:class:`HubUnreachableError`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from hashhub_client import __version__

MATCH_BATCH = 1000
"""The most hashes one ``POST /api/v1/match`` may carry (API contract v1)."""

ADD_BATCH = 1000
"""Entries per ``POST /api/v1/lists/{id}/entries`` (the hub takes up to 10,000)."""

EXPORT_PAGE = 10_000
"""The largest export page the hub gives."""

MAX_WAIT_SECONDS = 60.0


class HubError(Exception):
    """The hub refused a request: its HTTP status and its error's code and message."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details

    def __str__(self) -> str:
        return f"the hub answered {self.status} {self.code}: {self.message}"


class HubUnreachableError(Exception):
    """No answer from the hub: a connection, TLS or timeout failure."""


class HubClient:
    """One organisation's API key against one hub."""

    def __init__(
        self,
        url: str,
        key: str,
        *,
        timeout: float = 120.0,
        retries: int = 3,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.url = url.rstrip("/")
        self.retries = retries
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=self.url,
            headers={
                "Authorization": f"Bearer {key}",
                "Accept": "application/json",
                "User-Agent": f"hashhub-client/{__version__}",
            },
            timeout=timeout,
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> HubClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """The JSON body of a successful answer; HubError or HubUnreachableError otherwise."""
        attempt = 0
        while True:
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.HTTPError as error:
                raise HubUnreachableError(
                    f"could not reach the hub at {self.url}: {type(error).__name__}: {error}"
                ) from None
            wait = _retry_after(response)
            if wait is not None and attempt < self.retries:
                attempt += 1
                self._sleep(wait)
                continue
            return _body(response)

    def match(
        self, hashes: list[dict[str, str]], max_distance: dict[str, int] | None = None
    ) -> dict[str, Any]:
        """``POST /api/v1/match`` for up to MATCH_BATCH hashes."""
        if len(hashes) > MATCH_BATCH:
            raise ValueError(f"at most {MATCH_BATCH} hashes a match request")
        body: dict[str, Any] = {"hashes": hashes}
        if max_distance:
            body["max_distance"] = max_distance
        return self.request("POST", "/api/v1/match", json=body)

    def add_entries(self, list_id: str, entries: list[dict[str, Any]]) -> dict[str, Any]:
        """``POST /api/v1/lists/{id}/entries``: ``{"added", "already_present", "errors"}``."""
        return self.request(
            "POST", f"/api/v1/lists/{_segment(list_id)}/entries", json={"entries": entries}
        )

    def export_page(self, cursor: str, limit: int = EXPORT_PAGE) -> dict[str, Any]:
        """``GET /api/v1/export``: ``{"items", "next_cursor", "has_more"}``."""
        return self.request("GET", "/api/v1/export", params={"cursor": cursor, "limit": limit})


def _segment(value: str) -> str:
    """A path segment, quoted (a list id never holds a slash, but a typo might)."""
    from urllib.parse import quote

    return quote(value, safe="")


def _retry_after(response: httpx.Response) -> float | None:
    if response.status_code not in (429, 503):
        return None
    raw = response.headers.get("Retry-After", "")
    try:
        seconds = float(raw)
    except ValueError:
        return None
    return min(max(seconds, 0.0), MAX_WAIT_SECONDS)


def _body(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.is_success and isinstance(body, dict):
        return body
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("code"), str):
        raise HubError(
            response.status_code,
            error["code"],
            str(error.get("message", "")),
            error.get("details"),
        )
    if response.is_success:
        raise HubError(response.status_code, "bad_response", "The hub's answer was not JSON.")
    # Not the hub's error shape: a proxy's page, say. Say what came back, not all of it.
    return_text = " ".join(response.text.split())[:200]
    raise HubError(
        response.status_code,
        "http_error",
        f"HTTP {response.status_code} {response.reason_phrase}"
        + (f": {return_text}" if return_text else ""),
    )
