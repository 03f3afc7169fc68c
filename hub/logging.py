"""Log records as JSON lines, a request id to tie them together, and redaction of secrets.

``HASHHUB_LOG_FORMAT=json`` (hub.settings ``LOGGING``) writes one JSON object per line:
``time`` (ISO 8601, UTC), ``level``, ``logger``, ``message``, ``request_id`` while a web request
is being answered, and ``exception`` when there is one. Whatever the format, the console
handler's :class:`RedactFilter` rewrites every record's text before it is written: runs of 16 or
more hex digits (MD5, SHA-1, SHA-256, PDQ and pHash values, digests of keys), API keys
(``hh_…``), webhook secrets (``whsec_…``), bearer and basic credentials, and long base64 runs
(opaque hashes such as PhotoDNA) become ``[redacted]`` markers, so neither the hashes of uploads
nor keys reach the log (DESIGN.md invariant 1 and the issue's operations section).

The request id is the proxy's ``X-Request-ID`` when it sends a sane one, else a fresh random
one; it is sent back in the answer's ``X-Request-ID``. This module imports nothing of Django at
load time, so gunicorn's own logging can use it too (hub.gunicorn_conf).
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

REQUEST_ID_HEADER = "X-Request-ID"
_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "hashhub_request_id", default=None
)
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")

# Order matters: the shaped secrets first (their tails may hold hex or base64 runs).
_REDACTIONS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\bhh_[A-Za-z0-9_-]{6,}"), "hh_[redacted-key]"),
    (re.compile(r"\bwhsec_[A-Za-z0-9_-]{6,}"), "whsec_[redacted]"),
    (
        re.compile(r"(?i)\b(bearer|basic|token)(\s+|=|:\s*)[A-Za-z0-9._~+/=-]{8,}"),
        r"\1\2[redacted]",
    ),
    # Base64 of 75 bytes or more (a PhotoDNA value is 192 characters, standard or URL-safe);
    # long enough that no path or id of the hub's own is taken for one.
    (re.compile(r"(?<![A-Za-z0-9+/_-])[A-Za-z0-9+/_-]{100,}={0,2}"), "[redacted-base64]"),
    (re.compile(r"(?<![0-9a-fA-F])[0-9a-fA-F]{16,}(?![0-9a-fA-F])"), "[redacted-hex]"),
)


def redact(text: str) -> str:
    """``text`` without hex runs, keys, credentials or long base64 runs."""
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


def current_request_id() -> str | None:
    """The id of the web request this thread is answering, if any."""
    return _request_id.get()


class RedactFilter(logging.Filter):
    """Rewrites the record's message (arguments merged in) and its exception text, redacted.

    A filter on the handler, so it runs once per record before any formatter; it also stamps the
    record with ``request_id`` for the formatters.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: log what there is rather than nothing
            message = f"{record.msg!s} {record.args!r}"
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (redacted again: safe without the filter too)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        request_id = getattr(record, "request_id", None) or current_request_id()
        if request_id:
            entry["request_id"] = request_id
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = redact(record.exc_text)
        if record.stack_info:
            entry["stack"] = redact(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class RequestIdMiddleware:
    """Gives each web request an id (the proxy's ``X-Request-ID`` when sane) for its log lines,
    and returns it in the answer's ``X-Request-ID``."""

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        given = request.headers.get(REQUEST_ID_HEADER, "")
        request_id = given if _SANE_REQUEST_ID.fullmatch(given) else secrets.token_urlsafe(12)
        token = _request_id.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            _request_id.reset(token)
        response[REQUEST_ID_HEADER] = request_id
        return response
