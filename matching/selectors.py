"""Reads of the matching app: the delta export feed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import connection

from hub.models import Organization
from lists.hashtypes import get_signal_type
from lists.selectors import decode_cursor, encode_cursor
from sharing.selectors import lists_matchable_by

EXPORT_PAGE_SIZE = 1000
EXPORT_MAX_PAGE_SIZE = 10_000

# Adds and removals after a change number, merged in change order. Each arm reads its own
# unique index (added_seq, removed_seq) in order and stops after ``limit`` rows.
_EXPORT_SQL = """
SELECT seq, op, hash_list_id, signal_type, value FROM (
    (SELECT e.added_seq AS seq, 'add' AS op, e.hash_list_id, h.signal_type, h.value
       FROM lists_entry e JOIN lists_hash h ON h.id = e.hash_id
      WHERE e.added_seq > %(after)s AND e.hash_list_id = ANY(%(lists)s)
      ORDER BY e.added_seq LIMIT %(limit)s)
    UNION ALL
    (SELECT e.removed_seq AS seq, 'remove' AS op, e.hash_list_id, h.signal_type, h.value
       FROM lists_entry e JOIN lists_hash h ON h.id = e.hash_id
      WHERE e.removed_seq > %(after)s AND e.hash_list_id = ANY(%(lists)s)
      ORDER BY e.removed_seq LIMIT %(limit)s)
) AS changes
ORDER BY seq LIMIT %(limit)s
"""


@dataclass
class ExportPage:
    items: list[dict[str, Any]]
    next_cursor: str
    has_more: bool


def export_page(
    *, org: Organization, cursor: str = "", limit: int = EXPORT_PAGE_SIZE
) -> ExportPage:
    """The changes (adds and removes) after ``cursor`` to everything ``org`` may match against.

    Replaying the feed from the start, in order, yields exactly the live (list, hash) pairs the
    organisation matches against. Cursors are change numbers, and entries are never deleted, so any
    cursor once given out keeps working. An empty page returns the same cursor: poll it again.
    Deleted lists stay in the feed so that their removals reach the platform.
    """
    after = decode_cursor(cursor) if cursor else 0
    limit = max(1, min(limit, EXPORT_MAX_PAGE_SIZE))
    lists = lists_matchable_by(org=org, include_deleted=True)
    rows: list[tuple[Any, ...]] = []
    if lists:
        with connection.cursor() as db:
            db.execute(_EXPORT_SQL, {"after": after, "lists": list(lists), "limit": limit})
            rows = db.fetchall()
    items = [
        {
            "seq": seq,
            "op": op,
            "type": signal_type,
            "value": get_signal_type(signal_type).to_text(bytes(value)),
            "list": lists[list_pk].as_dict(),
        }
        for seq, op, list_pk, signal_type, value in rows
    ]
    last = items[-1]["seq"] if items else after
    return ExportPage(items, encode_cursor(last), len(items) == limit)
