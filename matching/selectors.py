"""Reads of the matching app: the delta export feed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import connection

from hub.errors import ServiceError
from hub.models import Organization
from lists.hashtypes import get_signal_type
from lists.selectors import decode_cursor, encode_cursor
from sharing.selectors import lists_described, matchable_by

EXPORT_PAGE_SIZE = 1000
EXPORT_MAX_PAGE_SIZE = 10_000

# Everything the feed says after a position (seq, sub), in that order:
# - entry changes (adds, removes) inside an access interval (lo, hi) of a list: the caller's own
#   lists have (0, forever), a community list one interval per grant;
# - at a grant (seq g), an add for each entry of the list live at g;
# - at a revoke (seq r), a remove for each entry of the list live at r.
# Expanded items share their event's seq and are ordered by the entry's added_seq (``sub``);
# plain changes have sub 0. Each arm reads an index in order and stops after ``limit`` rows.
_EXPORT_SQL = """
WITH iv(list_id, lo, hi) AS (
    SELECT * FROM unnest(%(iv_list)s::bigint[], %(iv_lo)s::bigint[], %(iv_hi)s::bigint[])
), ev(list_id, seq, granted) AS (
    SELECT * FROM unnest(%(ev_list)s::bigint[], %(ev_seq)s::bigint[], %(ev_granted)s::boolean[])
)
SELECT seq, sub, op, hash_list_id, signal_type, value FROM (
    (SELECT e.added_seq AS seq, 0::bigint AS sub, 'add' AS op, e.hash_list_id, h.signal_type,
            h.value
       FROM iv JOIN lists_entry e ON e.hash_list_id = iv.list_id
                AND e.added_seq > iv.lo AND e.added_seq < iv.hi
       JOIN lists_hash h ON h.id = e.hash_id
      WHERE e.added_seq > %(after)s
      ORDER BY e.added_seq LIMIT %(limit)s)
    UNION ALL
    (SELECT e.removed_seq, 0::bigint, 'remove', e.hash_list_id, h.signal_type, h.value
       FROM iv JOIN lists_entry e ON e.hash_list_id = iv.list_id
                AND e.removed_seq > iv.lo AND e.removed_seq < iv.hi
       JOIN lists_hash h ON h.id = e.hash_id
      WHERE e.removed_seq > %(after)s
      ORDER BY e.removed_seq LIMIT %(limit)s)
    UNION ALL
    (SELECT ev.seq, e.added_seq, CASE WHEN ev.granted THEN 'add' ELSE 'remove' END,
            e.hash_list_id, h.signal_type, h.value
       FROM ev JOIN lists_entry e ON e.hash_list_id = ev.list_id
                AND e.added_seq < ev.seq AND (e.removed_seq IS NULL OR e.removed_seq > ev.seq)
       JOIN lists_hash h ON h.id = e.hash_id
      WHERE (ev.seq, e.added_seq) > (%(after)s, %(after_sub)s)
      ORDER BY ev.seq, e.added_seq LIMIT %(limit)s)
) AS changes
ORDER BY seq, sub LIMIT %(limit)s
"""


@dataclass
class ExportPage:
    items: list[dict[str, Any]]
    next_cursor: str
    has_more: bool


def _encode(seq: int, sub: int) -> str:
    return encode_cursor(seq) if not sub else encode_cursor(seq) + f".{sub}"


def _decode(cursor: str) -> tuple[int, int]:
    seq_part, _, sub_part = cursor.partition(".")
    if sub_part and not sub_part.isdigit():
        raise ServiceError("bad_cursor", "The cursor is not one this hub gave out.")
    return decode_cursor(seq_part), int(sub_part or 0)


def export_page(
    *, org: Organization, cursor: str = "", limit: int = EXPORT_PAGE_SIZE
) -> ExportPage:
    """The changes (adds and removes) after ``cursor`` to everything ``org`` may match against.

    Replaying the feed from the start, in order, yields exactly the live (list, hash) pairs the
    organisation matches against (``sharing.selectors.matchable_by``, which the match service
    reads too): its own lists' changes, and for each shared or verified list the whole list when
    access began (a subscription, a list shared, a grant), its changes while access lasted, and
    removals of all of it when access ended (unsubscribed, made private, revoked). Cursors are
    positions in the change sequence and nothing is ever deleted, so any cursor once given out
    keeps working. An empty page returns the same cursor: poll it again. Deleted lists stay in
    the feed so that their removals reach the platform.
    """
    after, after_sub = _decode(cursor) if cursor else (0, 0)
    limit = max(1, min(limit, EXPORT_MAX_PAGE_SIZE))
    matchable = matchable_by(org=org, history=True)
    intervals, events = matchable.intervals, matchable.events
    rows: list[tuple[Any, ...]] = []
    if intervals:
        with connection.cursor() as db:
            db.execute(
                _EXPORT_SQL,
                {
                    "iv_list": [i[0] for i in intervals],
                    "iv_lo": [i[1] for i in intervals],
                    "iv_hi": [i[2] for i in intervals],
                    "ev_list": [e[1] for e in events],
                    "ev_seq": [e[0] for e in events],
                    "ev_granted": [e[2] for e in events],
                    "after": after,
                    "after_sub": after_sub,
                    "limit": limit,
                },
            )
            rows = db.fetchall()
    described = lists_described(org=org, pks={row[3] for row in rows})
    items = [
        {
            "seq": seq,
            "op": op,
            "type": signal_type,
            "value": get_signal_type(signal_type).to_text(bytes(value)),
            "list": described[list_pk].as_dict(),
        }
        for seq, _, op, list_pk, signal_type, value in rows
    ]
    last = (rows[-1][0], rows[-1][1]) if rows else (after, after_sub)
    return ExportPage(items, _encode(*last), len(items) == limit)
