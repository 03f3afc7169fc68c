"""Keyset cursors over (time, public id), for pages of records newest first.

A cursor carries the last row's own time (microseconds) and public id, base64url-encoded: no
row number leaves the hub (DESIGN.md, invariant 7), and a page stays right while rows are added.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime, timedelta

from hub.errors import ServiceError

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CURSOR = re.compile(r"([0-9]{1,17})\.([A-Za-z0-9_-]{1,32})")


def time_cursor_encode(moment: datetime, public_id: str) -> str:
    micros = (moment - _EPOCH) // timedelta(microseconds=1)
    return base64.urlsafe_b64encode(f"{micros}.{public_id}".encode()).decode().rstrip("=")


def time_cursor_decode(cursor: str) -> tuple[datetime, str]:
    """The (time, public id) a cursor of :func:`time_cursor_encode` names; ServiceError
    ``bad_cursor`` for anything else."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, binascii.Error, UnicodeDecodeError):
        text = ""
    found = _CURSOR.fullmatch(text)
    try:
        if found is None:
            raise ValueError
        moment = _EPOCH + timedelta(microseconds=int(found.group(1)))
    except (ValueError, OverflowError):
        raise ServiceError("bad_cursor", "The cursor is not one this hub gave out.") from None
    return moment, found.group(2)
