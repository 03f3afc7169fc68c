"""Reads of hash lists and entries, always through the caller's organisation."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.db.backends.utils import CursorWrapper
from django.db.models import QuerySet
from django.http import Http404
from django_scopes import scopes_disabled

from hub.errors import ServiceError
from hub.models import Organization
from lists.hashtypes import all_signal_types, get_signal_type
from lists.models import Entry, Hash, HashList

PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


def lists_of(*, org: Organization) -> QuerySet[HashList]:
    """The organisation's own live lists, categories first (CSAM before SE), then by name."""
    return HashList.objects.filter(organization=org, deleted_at__isnull=True).order_by(
        "category", "name"
    )


def get_list_for_org(*, org: Organization, public_id: str) -> HashList:
    """One of the organisation's lists; the same 404 for a missing id and for someone else's."""
    hash_list = (
        HashList.objects.filter(organization=org, public_id=public_id, deleted_at__isnull=True)
        .select_related("organization")
        .first()
    )
    if hash_list is None:
        raise Http404("No such list.")
    return hash_list


@dataclass
class ListStats:
    size: int
    by_type: dict[str, int]
    last_change: datetime | None


def list_stats(*, lists: list[HashList]) -> dict[int, ListStats]:
    """Live entry counts (total and per type) and the last change of each list.

    Read from the counters the services keep on the list row: no entry is counted here.
    """
    return {
        hl.pk: ListStats(sum(hl.live_counts.values()), dict(hl.live_counts), hl.last_change_at)
        for hl in lists
    }


def hex_prefix_range(prefix: str) -> tuple[bytes, bytes | None]:
    """The bytes range [low, high) of values whose hex starts with ``prefix`` (high None: no bound).

    Raises ServiceError ``bad_prefix`` for anything but 1 to 64 hex digits.
    """
    prefix = prefix.strip().lower()
    if not prefix or len(prefix) > 64 or any(c not in "0123456789abcdef" for c in prefix):
        raise ServiceError("bad_prefix", "Search by 1 to 64 hexadecimal digits of the hash.")
    low = bytes.fromhex(prefix + "0" * (len(prefix) % 2))
    high_hex = prefix + "f" * (len(prefix) % 2)
    number = int(high_hex, 16) + 1
    if number >= 16 ** len(high_hex):
        return low, None
    return low, number.to_bytes(len(high_hex) // 2, "big")


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"s{seq}".encode()).decode().rstrip("=")


_CURSOR_NUMBER = re.compile(r"s([0-9]{1,19})")


def decode_cursor(cursor: str) -> int:
    """The change number in a cursor this hub gave out; 400 ``bad_cursor`` for anything else.

    Only ASCII digits of a number below 2**63 (a bigint): ``int()`` would also take other
    scripts' digits and any length, and a number past a bigint failed in the database.
    """
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, binascii.Error, UnicodeDecodeError):
        text = ""
    found = _CURSOR_NUMBER.fullmatch(text)
    if found is None or int(found.group(1)) >= 2**63:
        raise ServiceError("bad_cursor", "The cursor is not one this hub gave out.")
    return int(found.group(1))


@dataclass
class EntryPage:
    entries: list[Entry]
    next_cursor: str | None


# How a page of a list's entries is found
# ---------------------------------------
# A page is a list's newest live entries below the cursor: a backward walk of the
# entry_by_list_seq index (list, change number) that stops after one page. Left to itself, the
# planner takes that walk only while its statistics know how big the list is. Right after a bulk
# load, before autovacuum's next ANALYZE, they do not: it expected one live entry, read the
# partial unique index (hash, list) from end to end instead and sorted the whole list for every
# page (0.2 to 1.4 s a page at 300,000 entries, by filter; bench/bulk_import.py). Rather than
# have every path that adds entries (uploads, sources, the API) refresh the statistics, these
# reads leave the planner no choice:
#
# - each statement runs with planner settings that rule out the plans it must not have
#   (``_PLANS``, SET LOCAL by ``_planned``): a walk may not sort, use a bitmap or a sequential
#   scan, or hash or merge its joins, which leaves an ordered index scan with nested loops that
#   stops at the LIMIT;
# - a walk asks for the order of entry_by_list_seq itself, (list, change number), naming the
#   list as ``= ANY(ARRAY[id])``, which the planner does not fold into a constant: the global
#   added_seq index, ordered alike within one list, cannot serve it (it would read every newer
#   entry of every other list first).
#
# A filter that few of the list's entries pass would make a walk read the whole list, so:
# - a hash prefix of two or more hex digits (at most a 256th of the hashes) starts from the hashes
#   with that prefix (one range of the (type, value) index per type) and looks each one's live
#   entry in the list up by the unique index; a one-digit prefix is walked (16 entries a row);
# - a label is walked over at most LABEL_WALK entries per row of the page; when the page is not
#   full by then, the rest comes from the label's GIN index. That index and the unique one are
#   partial alike (live entries), so no setting can keep the planner from reading every live
#   entry through the latter instead: it has done so only on a table never analyzed yet;
# - a type is walked: no index holds an entry's type, so a type that is rare in a long list
#   walks much of the list.

# Prefixes with more hex digits than this start from the hashes rather than walk the list.
PREFIX_WALK_DIGITS = 1
# A label filter walks at most this many entries per row of the page before its index.
LABEL_WALK = 20

_ENTRY = Entry._meta.db_table
_HASH = Hash._meta.db_table

_OFF, _ON = "off", "on"
# JIT compilation too is off, as for a source's pages (lists.sources.apply): a high guess of
# rows would start it, at tens of milliseconds, for statements that take one.
_SETTINGS = (
    "jit",
    "enable_seqscan",
    "enable_sort",
    "enable_bitmapscan",
    "enable_indexscan",
    "enable_hashjoin",
    "enable_mergejoin",
)
_PLANS: dict[str, tuple[str, ...]] = {
    # Ordered index scans and nested loops only.
    "walk": (_OFF, _OFF, _OFF, _OFF, _ON, _OFF, _OFF),
    # Bitmap scans (the label's GIN index), sorted; nested loops (of bitmap scans) to the hashes.
    "label": (_OFF, _OFF, _ON, _ON, _OFF, _OFF, _OFF),
    # Index ranges of the hashes, one unique-index probe each for the entry, sorted.
    "hash": (_OFF, _OFF, _ON, _ON, _ON, _OFF, _OFF),
}


class _Planner:
    """Runs statements, each under the planner settings of its kind (``_PLANS``)."""

    def __init__(self, cursor: CursorWrapper) -> None:
        self.cursor = cursor
        self.plan = ""

    def use(self, plan: str) -> None:
        if plan != self.plan:
            _set_local(self.cursor, _PLANS[plan])
            self.plan = plan

    def rows(self, plan: str, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        self.use(plan)
        self.cursor.execute(sql, params)
        return self.cursor.fetchall()


@contextmanager
def _planned() -> Iterator[_Planner]:
    """A transaction (or savepoint) whose statements run under ``_PLANS``' settings.

    The settings are SET LOCAL: the end of the transaction ends them. Inside a caller's
    transaction they would outlive the savepoint, so the caller's values are put back.
    """
    outermost = not connection.in_atomic_block
    with transaction.atomic(), connection.cursor() as cursor:
        previous: tuple[str, ...] = ()
        if not outermost:
            cursor.execute(
                "SELECT " + ", ".join(["current_setting(%s)"] * len(_SETTINGS)), _SETTINGS
            )
            previous = tuple(cursor.fetchone() or ())
        yield _Planner(cursor)
        if previous:
            _set_local(cursor, previous)


def _set_local(cursor: CursorWrapper, values: tuple[str, ...]) -> None:
    cursor.execute(
        "SELECT " + ", ".join(["set_config(%s, %s, true)"] * len(_SETTINGS)),
        [item for pair in zip(_SETTINGS, values, strict=True) for item in pair],
    )


@dataclass(frozen=True)
class _EntryFilter:
    list_id: int
    before: int  # Entries with a lower change number only.
    signal_type: str = ""
    label: str = ""
    prefix: str = ""

    def conditions(self) -> tuple[str, bool]:
        """SQL conditions on the entry ``e`` and its hash ``h``; whether they need the hash."""
        conditions = ["true"]
        if self.label:
            conditions.append("e.labels @> ARRAY[%(label)s]::varchar[]")
        if self.signal_type:
            conditions.append("h.signal_type = %(type)s")
        if self.prefix:
            conditions.append("h.value >= %(low)s")
            if hex_prefix_range(self.prefix)[1] is not None:
                conditions.append("h.value < %(high)s")
        return " AND ".join(conditions), bool(self.signal_type or self.prefix)

    def params(self, **more: Any) -> dict[str, Any]:
        low, high = hex_prefix_range(self.prefix) if self.prefix else (b"", None)
        return {
            "list": self.list_id,
            "before": self.before,
            "label": self.label,
            "type": self.signal_type,
            "low": low,
            "high": high,
            **more,
        }


# The walk: a list's live entries below a change number, newest first, at most %(budget)s of
# them (NULL: no bound), filtered, at most %(n)s. See above for the ANY(ARRAY[...]) and ORDER BY.
_WALK = f"""
SELECT e.id, e.added_seq
  FROM (SELECT id, hash_id, hash_list_id, labels, added_seq FROM {_ENTRY}
         WHERE hash_list_id = ANY(ARRAY[%(list)s]::bigint[]) AND removed_seq IS NULL
           AND added_seq < %(before)s
         ORDER BY hash_list_id DESC, added_seq DESC
         LIMIT %(budget)s) e
  {{join}}
 WHERE {{conditions}}
 ORDER BY e.hash_list_id DESC, e.added_seq DESC
 LIMIT %(n)s
"""  # noqa: S608 (the models' table names; the braces take constants of this module)

# The change number of the walk's last entry within %(budget)s, if the list goes that far.
_WALK_EDGE = f"""
SELECT added_seq FROM {_ENTRY}
 WHERE hash_list_id = ANY(ARRAY[%(list)s]::bigint[]) AND removed_seq IS NULL
   AND added_seq < %(before)s
 ORDER BY hash_list_id DESC, added_seq DESC
OFFSET %(budget)s - 1 LIMIT 1
"""  # noqa: S608 (the models' table names)

# The label's GIN index (partial: live entries; the conditions hold the label's), sorted. "+ 0"
# keeps the list and the change number out of every index's conditions.
_BY_LABEL = f"""
SELECT e.id, e.added_seq FROM {_ENTRY} e
  {{join}}
 WHERE {{conditions}} AND e.removed_seq IS NULL
   AND e.hash_list_id + 0 = %(list)s AND e.added_seq + 0 < %(before)s
 ORDER BY e.added_seq DESC
 LIMIT %(n)s
"""  # noqa: S608 (the models' table names; the braces take constants of this module)

# The hashes with a prefix (one index range per type), then each one's live entry in the list
# by the unique index (hash, list): at most one, which the LIMIT makes a probe per hash.
_BY_HASH = f"""
SELECT e.id, e.added_seq FROM {_HASH} h
 CROSS JOIN LATERAL (
       SELECT id, added_seq, labels FROM {_ENTRY}
        WHERE hash_id = h.id AND hash_list_id = %(list)s AND removed_seq IS NULL
          AND added_seq < %(before)s
        LIMIT 1) e
 WHERE h.signal_type = ANY(%(types)s) AND {{conditions}}
 ORDER BY e.added_seq DESC
 LIMIT %(n)s
"""  # noqa: S608 (the models' table names; the braces take constants of this module)

# The published view of an anonymous list (lists.changes), newest publication first: what other
# organisations see of it. The same walk, on the (list, publication number) index.
_WALK_PUBLISHED = f"""
SELECT e.id, e.published_seq
  FROM (SELECT id, hash_id, hash_list_id, published_seq FROM {_ENTRY}
         WHERE hash_list_id = ANY(ARRAY[%(list)s]::bigint[]) AND published_seq IS NOT NULL
           AND published_seq < %(before)s AND unpublished_seq IS NULL
         ORDER BY hash_list_id DESC, published_seq DESC) e
  {{join}}
 WHERE {{conditions}}
 ORDER BY e.hash_list_id DESC, e.published_seq DESC
 LIMIT %(n)s
"""  # noqa: S608 (the models' table names; the braces take constants of this module)

_JOIN_HASH = f"JOIN {_HASH} h ON h.id = e.hash_id"


def _page_rows(
    planner: _Planner, found: _EntryFilter, n: int, *, published: bool = False
) -> list[tuple[int, int]]:
    """(id, change number) of up to ``n`` entries that pass ``found``, newest first."""
    conditions, needs_hash = found.conditions()
    join = _JOIN_HASH if needs_hash else ""
    if published:
        sql = _WALK_PUBLISHED.format(join=join, conditions=conditions)
        return planner.rows("walk", sql, found.params(n=n))
    if len(found.prefix) > PREFIX_WALK_DIGITS:
        types = [found.signal_type] if found.signal_type else [t.name for t in all_signal_types()]
        sql = _BY_HASH.format(conditions=conditions)
        return planner.rows("hash", sql, found.params(n=n, types=types))
    walk = _WALK.format(join=join, conditions=conditions)
    if not found.label:
        return planner.rows("walk", walk, found.params(n=n, budget=None))
    budget = LABEL_WALK * n
    rows = planner.rows("walk", walk, found.params(n=n, budget=budget))
    if len(rows) == n:
        return rows
    edge = planner.rows("walk", _WALK_EDGE, found.params(budget=budget))
    if not edge:  # The walk reached the list's end.
        return rows
    rest = _BY_LABEL.format(join=join, conditions=conditions)
    return rows + planner.rows("label", rest, found.params(n=n - len(rows), before=edge[0][0]))


# Above every change number: the first page's "below the cursor".
_NO_CURSOR = 2**63 - 1


def entries_page(
    *,
    hash_list: HashList,
    cursor: str = "",
    limit: int = PAGE_SIZE,
    signal_type: str = "",
    label: str = "",
    prefix: str = "",
    published: bool = False,
) -> EntryPage:
    """A page of a list's live entries, newest first, by keyset on the change number.

    ``published``: the list's published view instead (an anonymous list as other organisations
    see it: lists.changes), by publication number; ``label`` does not apply to it.

    Keyset (not OFFSET) paging keeps every page as fast at entry 1,000,000 as at entry 1, and
    each statement's plan is fixed (see above), so that it stays so right after a bulk load.
    Finds the page's entries first, then loads them with their hashes by primary key.
    """
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    if prefix:
        hex_prefix_range(prefix)  # Raises bad_prefix before any query.
    found = _EntryFilter(
        list_id=hash_list.pk,
        before=decode_cursor(cursor) if cursor else _NO_CURSOR,
        signal_type=signal_type,
        label="" if published else label,
        prefix=prefix.strip().lower(),
    )
    with _planned() as planner:
        rows = _page_rows(planner, found, limit + 1, published=published)
        ids = [pk for pk, _seq in rows[:limit]]
        # By primary key alone: these are the list's own entries, and the tenant scope's join to
        # the lists would let the planner find them by list instead, reading all of it.
        planner.use("walk")
        with scopes_disabled():
            loaded = Entry.objects.select_related("hash").in_bulk(ids)
    next_cursor = encode_cursor(rows[limit - 1][1]) if len(rows) > limit else None
    return EntryPage([loaded[pk] for pk in ids if pk in loaded], next_cursor)


EXPORT_PAGE = 5000

# A keyset page of the export: the walk of the list's index (see above), with the hashes.
_EXPORT = f"""
SELECT e.added_seq, h.signal_type, h.value, e.labels, e.note, e.added_at, e.added_by_label
  FROM {_ENTRY} e JOIN {_HASH} h ON h.id = e.hash_id
 WHERE e.hash_list_id = ANY(ARRAY[%(list)s]::bigint[]) AND e.removed_seq IS NULL
   AND e.added_seq < %(before)s
 ORDER BY e.hash_list_id DESC, e.added_seq DESC
 LIMIT %(n)s
"""  # noqa: S608 (the models' table names)


def entries_export_rows(*, hash_list: HashList) -> Iterator[tuple[str, str, str, str, str, str]]:
    """Every live entry as (type, value, labels, note, added_at, added_by), newest first.

    Plain tuples a keyset page at a time: memory stays flat and no model object is built, so a
    million-entry list streams in seconds. Each page is one statement on the list's own id, with
    the walk's fixed plan, so no tenant scope is needed (a streamed response is consumed after
    the view, and the middleware's scope, have returned).
    """
    before = _NO_CURSOR
    while True:
        with _planned() as planner:
            params = {"list": hash_list.pk, "before": before, "n": EXPORT_PAGE}
            rows = planner.rows("walk", _EXPORT, params)
        for _seq, signal_type, value, labels, note, added_at, added_by in rows:
            text = get_signal_type(signal_type).to_text(bytes(value))
            yield (signal_type, text, ";".join(labels), note, added_at.isoformat(), added_by)
        if len(rows) < EXPORT_PAGE:
            return
        before = rows[-1][0]
