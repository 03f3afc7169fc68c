"""Reads of the matching app: the delta export feed."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from hub.errors import ServiceError
from hub.models import Organization
from lists import changes
from lists.hashtypes import get_signal_type
from lists.selectors import decode_cursor, encode_cursor
from sharing.policy import disable_feed_rows, disable_windows
from sharing.selectors import entry_provenance, lists_described, matchable_by

EXPORT_PAGE_SIZE = 1000
EXPORT_MAX_PAGE_SIZE = 10_000


@dataclass
class ExportPage:
    items: list[dict[str, Any]]
    next_cursor: str
    has_more: bool


def _encode(seq: int, sub: int) -> str:
    return encode_cursor(seq) if not sub else encode_cursor(seq) + f".{sub}"


def _decode(cursor: str) -> tuple[int, int]:
    seq_part, _, sub_part = cursor.partition(".")
    # ASCII digits of a bigint only: str.isdigit() also takes "²", which int() then refuses.
    if sub_part and (not re.fullmatch(r"[0-9]{1,19}", sub_part) or int(sub_part) >= 2**63):
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
    the feed so that their removals reach the platform. Other owners' anonymous lists are read
    in their published view: their changes come in batches, at their publication numbers.
    An entry the organisation disabled (its match policy) is removed at the disable and added
    again when it ends; the list's own changes to it in between are left out.
    """
    after, after_sub = _decode(cursor) if cursor else (0, 0)
    limit = max(1, min(limit, EXPORT_MAX_PAGE_SIZE))
    matchable = matchable_by(org=org, history=True)
    intervals, events = matchable.intervals, matchable.events
    rows = _feed_with_disables(
        org=org,
        intervals=intervals,
        events=events,
        after=after,
        after_sub=after_sub,
        limit=limit,
        published=matchable.published,
    )
    described = lists_described(org=org, pks={row[3] for row in rows})
    # Adds and removes alike carry the entry's provenance, as far as the caller may see it
    # (sharing.selectors.entry_provenance): the same fields as a match of that entry.
    items = [
        {
            "seq": seq,
            "op": op,
            "type": signal_type,
            "value": get_signal_type(signal_type).to_text(bytes(value)),
            "list": described[list_pk].as_dict(),
            **entry_provenance(
                described[list_pk],
                labels=labels or (),
                added_at=added_at,
                record_id=record_id,
                share_classification=share,
                verification=verification,
            ),
        }
        for (
            seq,
            _,
            op,
            list_pk,
            signal_type,
            value,
            labels,
            added_at,
            record_id,
            share,
            verification,
        ) in rows
    ]
    last = (rows[-1][0], rows[-1][1]) if rows else (after, after_sub)
    return ExportPage(items, _encode(*last), len(items) == limit)


def _feed_with_disables(
    *,
    org: Organization,
    intervals: tuple[tuple[int, int, int], ...],
    events: tuple[tuple[int, int, bool], ...],
    after: int,
    after_sub: int,
    limit: int,
    published: frozenset[int],
) -> list[tuple[Any, ...]]:
    """The feed's rows after the position, with the organisation's entry disables applied (see
    :func:`export_page`): a page never stops short because rows were left out, except at the
    end of the feed."""
    windows = disable_windows(org=org)
    merged: list[tuple[Any, ...]] = []
    position = (after, after_sub)
    while True:
        rows = changes.feed_rows(
            intervals=intervals,
            events=events,
            after=position[0],
            after_sub=position[1],
            limit=limit,
            published=published,
        )
        if not windows.windows:
            return rows
        full = len(rows) == limit
        kept = [row for row in rows if not windows.hides(row[0], row[3], row[4], bytes(row[5]))]
        upto = rows[-1][0] if full else 2**63 - 1
        width = len(rows[0]) if rows else 0
        extra = disable_feed_rows(
            org=org,
            after=position[0],
            upto=upto,
            intervals=intervals,
            published=published,
            limit=limit,
        )
        # A disable's own rows have no provenance beyond the list (padded to the feed's shape).
        padding = (None, None, None, False, "")[: max(0, (width or 11) - 6)]
        merged += kept + [(*row, *padding) for row in extra if row[0] > position[0]]
        merged.sort(key=lambda row: (row[0], row[1]))
        if len(merged) >= limit or not full:
            return merged[:limit]
        position = (rows[-1][0], rows[-1][1])
