"""Opaque public identifiers: what leaves the hub is never a row number."""

from __future__ import annotations

import base64
import hmac
import secrets
import time

# An id never begins with "-": a command-line argument that does reads as an option
# (``fetchsource -x…`` failed for one source in 64).
_FIRST = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_"

# The URL-safe base64 characters in code-point order, so that the time digits of an ordered id
# sort as the time does.
_SORTABLE = "-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
_TIME_DIGITS = 7  # 42 bits of milliseconds since 1970: from 1972 (a letter first) to 2109
_RANDOM_DIGITS = 16 - _TIME_DIGITS  # 54 random bits per id


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


def new_ordered_public_id() -> str:
    """A 16-character URL-safe id that begins with the time it was made, e.g. ``PZ3kq0Xn…``."""
    return new_ordered_public_ids(1)[0]


def new_ordered_public_ids(count: int) -> list[str]:
    """``count`` ids of :func:`new_public_id`'s form whose first 7 characters are the current
    millisecond and whose other 9 are random (54 bits).

    For tables that gain millions of rows (entries): a unique index of random ids takes each new
    one on a random leaf page, several microseconds a row once it outgrows the caches, where ids
    that grow with time are added at one end. The time they tell is no more than the row's own
    (an entry shows when it was added).
    """
    stamp = time.time_ns() // 1_000_000
    prefix = "".join(
        _SORTABLE[(stamp >> (6 * place)) & 63] for place in reversed(range(_TIME_DIGITS))
    )
    # 3 random bytes are 4 characters: enough of them for every id, cut into 9s.
    size = -(-_RANDOM_DIGITS * count // 4) * 3
    text = base64.urlsafe_b64encode(secrets.token_bytes(size)).decode("ascii")
    return [
        prefix + text[start : start + _RANDOM_DIGITS]
        for start in range(0, _RANDOM_DIGITS * count, _RANDOM_DIGITS)
    ]


def _keyed_id_key() -> bytes:
    from django.conf import settings

    configured = getattr(settings, "HASHHUB_PUBLIC_ID_KEY", "")
    if configured:
        return configured.encode()
    return hmac.new(settings.SECRET_KEY.encode(), b"hashhub.keyed-public-id", "sha256").digest()


def keyed_public_id(public_id: str) -> str:
    """The id another organisation sees for one of ours: a keyed hash of it, 16 URL-safe chars.

    Entry ids are ordered by time (:func:`new_ordered_public_ids`): shown as they are, an
    anonymous list's ids would tell when each entry was made, to the millisecond, and pair them
    with its owner's open lists. The keyed hash is stable (a page read twice shows the same
    ids) and tells nothing without the key (``HASHHUB_PUBLIC_ID_KEY``, or one derived from
    ``SECRET_KEY``).
    """
    digest = hmac.new(_keyed_id_key(), public_id.encode(), "sha256").digest()
    keyed = base64.urlsafe_b64encode(digest[:12]).decode("ascii")
    return keyed if keyed[0] != "-" else _FIRST[digest[12] % len(_FIRST)] + keyed[1:]
