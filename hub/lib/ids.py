"""Opaque public identifiers: what leaves the hub is never a row number."""

from __future__ import annotations

import base64
import secrets

# An id never begins with "-": a command-line argument that does reads as an option
# (``fetchsource -x…`` failed for one source in 64).
_FIRST = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_"


def new_public_id() -> str:
    """A random 16-character URL-safe id (about 96 bits), e.g. ``q3V9k2mX0aLp7cTz``."""
    return new_public_ids(1)[0]


def new_public_ids(count: int) -> list[str]:
    """``count`` ids of :func:`new_public_id`'s form, from one read of the system's random source.

    For bulk inserts: making them in PostgreSQL (``gen_random_uuid``) costs several
    microseconds a row, a third of an import's entry insert.
    """
    # 12 random bytes are exactly 16 URL-safe base64 characters, so no padding falls between.
    text = base64.urlsafe_b64encode(secrets.token_bytes(12 * count)).decode("ascii")
    ids = [text[start : start + 16] for start in range(0, 16 * count, 16)]
    return [
        public_id if public_id[0] != "-" else secrets.choice(_FIRST) + public_id[1:]
        for public_id in ids
    ]
