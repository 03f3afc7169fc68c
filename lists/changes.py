"""The change sequence, entry writes and change-feed reads: the one owner of how lists change.

Every add and removal of an entry takes the next number of one global sequence (see
``lists/models.py`` for why a reader never skips a change that commits late). This module is the
only code that numbers changes, writes entries and their tombstones, keeps each list's live
counters, and reads the changes back for the match index, the export feed and the reconciler.
``lists.services`` (the entry and list services), the source runner (``lists.sources``),
``sharing`` (access events share the sequence) and ``matching`` (the index and the export) call
it; nothing else hand-writes a statement against the entry tables.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import psycopg
from django.db import connection, transaction
from django.dispatch import Signal
from django.utils import timezone
from django_scopes import scopes_disabled

from hub.audit import Actor
from hub.lib.ids import new_ordered_public_ids
from lists.models import HashList


@dataclass(frozen=True)
class ParsedEntry:
    index: int
    signal_type: str
    value: bytes
    labels: list[str]
    note: str


# --- the staging table and the change sequence ----------------------------------------------


def rows_distinct(rows: Iterable[ParsedEntry]) -> list[ParsedEntry]:
    """The first row of each (type, value), in order: a batch may repeat a hash."""
    first: dict[tuple[str, bytes], ParsedEntry] = {}
    for row in rows:
        first.setdefault((row.signal_type, row.value), row)
    return list(first.values())


def rows_stage(rows: Iterable[ParsedEntry]) -> None:
    """COPY distinct parsed rows into this transaction's staging table (made on first use)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMP TABLE IF NOT EXISTS hashhub_stage ("
            " idx integer, signal_type varchar(16), value bytea, labels text[], note text,"
            " public_id text"
            ") ON COMMIT DELETE ROWS"
        )
        cursor.execute("TRUNCATE hashhub_stage")
        rows = list(rows)
        # Each row carries the public id its entry gets if it is added (unused ones are dropped).
        public_ids = new_ordered_public_ids(len(rows))
        with cursor.cursor.copy(
            "COPY hashhub_stage (idx, signal_type, value, labels, note, public_id) FROM STDIN"
        ) as copy:
            for row, public_id in zip(rows, public_ids, strict=True):
                copy.write_row(
                    (row.index, row.signal_type, row.value, row.labels, row.note, public_id)
                )
        cursor.execute("ANALYZE hashhub_stage")


def sequence_lock() -> int:
    """Take the change sequence's lock until commit and return its last number (see models)."""
    with connection.cursor() as cursor:
        # One round trip: the conflict's no-op update locks the row (a migration makes it; the
        # insert recreates it if a test flush, a TRUNCATE, removed it) and returns its value.
        cursor.execute(
            "INSERT INTO lists_changecounter (id, last) VALUES (1, 0)"
            " ON CONFLICT (id) DO UPDATE SET last = lists_changecounter.last RETURNING last"
        )
        row = cursor.fetchone()
    if row is None:
        raise RuntimeError("the change counter row is missing; run the migrations")
    return int(row[0])


def sequence_advance(count: int) -> None:
    if count:
        with connection.cursor() as cursor:
            cursor.execute("UPDATE lists_changecounter SET last = last + %s WHERE id = 1", [count])


def sequence_allocate(count: int) -> int:
    """Take ``count`` numbers of the change sequence for changes made outside this module.

    Returns the first; the numbers are ``first .. first + count - 1``. Holds the sequence lock until
    the caller's transaction commits (see lists.models), so call it last, inside the transaction
    that writes the numbered rows.
    """
    if not connection.in_atomic_block:
        raise RuntimeError("sequence_allocate must run inside the transaction that uses it")
    first = sequence_lock() + 1
    sequence_advance(count)
    return first


SEQUENCE_LAST_SQL = "SELECT last FROM lists_changecounter WHERE id = 1"
"""The query behind :func:`sequence_last`, for callers that read it within another statement."""


def sequence_last() -> int:
    """The last committed change number: a cheap check for readers (index, export)."""
    with connection.cursor() as cursor:
        cursor.execute(SEQUENCE_LAST_SQL)
        row = cursor.fetchone()
    return int(row[0]) if row else 0


# Sent inside the transaction that tombstoned live entries of ``hash_list`` (any removal: by
# hand, by file, a list's deletion, an upstream's). ``sharing`` closes the disputes on them.
entries_removed = Signal()


@dataclass(frozen=True)
class Provenance:
    """Who adds or removes, as stored on the entry."""

    user_id: int | None
    key_id: int | None
    label: str

    def as_params(self) -> dict[str, Any]:
        """The statement parameters ``user``, ``key`` and ``label`` of an entry write."""
        return {"user": self.user_id, "key": self.key_id, "label": self.label}

    @classmethod
    def of(cls, actor: Actor, label: str | None = None) -> Provenance:
        return cls(
            user_id=actor.user.pk if actor.user else None,
            key_id=actor.api_key.pk if actor.api_key else None,
            label=(label or actor.label)[:200],
        )


def entries_add(
    hash_list: HashList, rows: Iterable[ParsedEntry], who: Provenance
) -> tuple[int, int]:
    """Stage, upsert the merged set, add live entries. Returns (valid rows, entries added)."""
    rows = list(rows)
    if not rows:
        return 0, 0
    rows_stage(rows_distinct(rows))
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO lists_hash (signal_type, value) "
            "SELECT signal_type, value FROM hashhub_stage "
            "ON CONFLICT (signal_type, value) DO NOTHING"
        )
        last = sequence_lock()
        # The staged rows are distinct (see _stage). Each looks its hash and its live entry up
        # through the unique indexes (correlated subqueries), so a chunk costs the same whether
        # the merged set holds a thousand hashes or ten million; a join would scan them all.
        cursor.execute(
            """
            WITH resolved AS (
                SELECT s.idx, s.signal_type, s.labels, s.note, s.public_id,
                       (SELECT h.id FROM lists_hash h
                         WHERE h.signal_type = s.signal_type AND h.value = s.value) AS hash_id
                FROM hashhub_stage s
            ), fresh AS (
                SELECT r.*, row_number() OVER (ORDER BY r.idx) AS rn
                FROM resolved r
                WHERE (SELECT e.id FROM lists_entry e
                        WHERE e.hash_list_id = %(list)s AND e.hash_id = r.hash_id
                          AND e.removed_seq IS NULL) IS NULL
            )
            , inserted AS (
                INSERT INTO lists_entry (
                    hash_list_id, hash_id, public_id, labels, note, added_seq, added_at,
                    added_by_user_id, added_by_key_id, added_by_label, removed_by_label,
                    removed_reason
                )
                SELECT %(list)s, hash_id, public_id, labels, note, %(last)s + rn, %(now)s,
                       %(user)s, %(key)s, %(label)s, '', ''
                FROM fresh
            )
            -- Every fresh row is inserted: its per-type count keeps the list's counters exact.
            SELECT signal_type, count(*) FROM fresh GROUP BY signal_type
            """,
            {
                "list": hash_list.pk,
                "last": last,
                "now": timezone.now(),
                **who.as_params(),
            },
        )
        by_type = {signal_type: int(n) for signal_type, n in cursor.fetchall()}
    added = sum(by_type.values())
    sequence_advance(added)
    counts_change(hash_list, by_type, sign=1)
    if added:
        entries_entered.send(sender=None)
    return len(rows), added


# Which live entries a removal tombstones: the staged hashes', or the whole list's.
STAGED_TARGETS = """
    SELECT e.id, h.signal_type FROM lists_entry e
    JOIN lists_hash h ON h.id = e.hash_id
    JOIN hashhub_stage s ON s.signal_type = h.signal_type AND s.value = h.value
    WHERE e.hash_list_id = %(list)s AND e.removed_seq IS NULL
"""
ALL_TARGETS = """
    SELECT e.id, h.signal_type FROM lists_entry e JOIN lists_hash h ON h.id = e.hash_id
    WHERE e.hash_list_id = %(list)s AND e.removed_seq IS NULL
"""


def entries_tombstone(
    hash_list: HashList,
    targets: str,
    who: Provenance,
    reason: str,
    params: dict[str, Any] | None = None,
) -> int:
    """Give each target entry the next change number and a removal record. Returns how many.

    ``params`` binds the target query's own parameters beyond ``list``.
    """
    last = sequence_lock()
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH targets AS (
                SELECT id, signal_type, row_number() OVER (ORDER BY id) AS rn
                FROM ({targets}) AS chosen
            ), updated AS (
                UPDATE lists_entry e
                   SET removed_seq = %(last)s + t.rn, removed_at = %(now)s,
                       removed_by_user_id = %(user)s, removed_by_key_id = %(key)s,
                       removed_by_label = %(label)s, removed_reason = %(reason)s
                  FROM targets t
                 WHERE e.id = t.id
            )
            SELECT signal_type, count(*) FROM targets GROUP BY signal_type
            """,  # noqa: S608 - only the two constant target queries above are formatted in.
            {
                "list": hash_list.pk,
                "last": last,
                "now": timezone.now(),
                **who.as_params(),
                "reason": reason,
                **(params or {}),
            },
        )
        by_type = {signal_type: int(n) for signal_type, n in cursor.fetchall()}
    removed = sum(by_type.values())
    sequence_advance(removed)
    counts_change(hash_list, by_type, sign=-1)
    if removed:
        entries_removed.send(sender=None, hash_list=hash_list)
    return removed


def counts_change(hash_list: HashList, by_type: dict[str, int], *, sign: int) -> None:
    """Keep the list's live counts per type and its last change, under the sequence lock.

    Counting on every write makes the list index and list page O(1) at any list size.
    """
    if not by_type:
        return
    types = sorted(by_type)
    now = timezone.now()
    with connection.cursor() as cursor:
        # Added in the statement (one round trip, under the row's lock): types whose count
        # falls to zero leave the object.
        cursor.execute(
            """
            UPDATE lists_hashlist SET last_change_at = %s, live_counts = (
                SELECT COALESCE(jsonb_object_agg(t, n) FILTER (WHERE n <> 0), '{}'::jsonb)
                  FROM (SELECT t, sum(n) AS n FROM (
                            SELECT key AS t, value::bigint AS n
                              FROM jsonb_each_text(lists_hashlist.live_counts)
                            UNION ALL
                            SELECT * FROM unnest(%s::text[], %s::bigint[])
                        ) AS both_ GROUP BY t) AS summed
            )
            WHERE id = %s RETURNING live_counts
            """,
            [now, types, [sign * by_type[t] for t in types], hash_list.pk],
        )
        stored = cursor.fetchone()[0]
    # Django leaves jsonb undecoded on raw cursors (its JSONField decodes it).
    hash_list.live_counts = json.loads(stored) if isinstance(stored, str) else dict(stored)
    hash_list.last_change_at = now


def entries_remove(
    hash_list: HashList, rows: Iterable[ParsedEntry], who: Provenance, reason: str
) -> tuple[int, int]:
    """Tombstone the live entries of the given hashes. Returns (distinct rows, entries removed)."""
    rows = rows_distinct(rows)
    if not rows:
        return 0, 0
    rows_stage(rows)
    return len(rows), entries_tombstone(hash_list, STAGED_TARGETS, who, reason)


# --- reconciling derived state ----------------------------------------------------------------

# Each list's stored live counts against its live entries, in one snapshot (a write changes
# both in one transaction, so any difference here is drift, never a write in flight).
# Lists whose stored counts per type differ from their entries: ``live_counts`` against the live
# entries of every list, and ``published_counts`` against the published view of anonymous lists.
_COUNTS_DRIFT_SQL = """
SELECT l.id, l.{column}, COALESCE(c.counts, '{{}}'::jsonb)
  FROM lists_hashlist l
  LEFT JOIN (
      SELECT hash_list_id, jsonb_object_agg(signal_type, n) AS counts
        FROM (SELECT e.hash_list_id, h.signal_type, count(*) AS n
                FROM lists_entry e JOIN lists_hash h ON h.id = e.hash_id
               WHERE {live}
                 AND (%(lists)s::bigint[] IS NULL OR e.hash_list_id = ANY(%(lists)s::bigint[]))
               GROUP BY e.hash_list_id, h.signal_type) AS per_type
       GROUP BY hash_list_id
  ) AS c ON c.hash_list_id = l.id
 WHERE l.{column} <> COALESCE(c.counts, '{{}}'::jsonb) AND {lists}
   AND (%(lists)s::bigint[] IS NULL OR l.id = ANY(%(lists)s::bigint[]))
 ORDER BY l.id
"""
_COUNT_VIEWS = {
    "live_counts": {"live": "e.removed_seq IS NULL", "lists": "true"},
    "published_counts": {
        "live": "e.published_seq IS NOT NULL AND e.unpublished_seq IS NULL",
        "lists": "l.visibility = 'anonymous'",
    },
}


@dataclass(frozen=True)
class CountDrift:
    """A list whose stored live counts differ from its live entries."""

    list_pk: int
    public_id: str
    stored: dict[str, int]
    actual: dict[str, int]
    column: str = "live_counts"  # or "published_counts" (an anonymous list's published view)

    def as_dict(self) -> dict[str, Any]:
        return {
            "list": self.public_id,
            "counts": self.column,
            "stored": self.stored,
            "actual": self.actual,
        }


def _counts(raw: Any) -> dict[str, int]:
    decoded = json.loads(raw) if isinstance(raw, str) else (raw or {})
    return {str(k): int(v) for k, v in decoded.items() if int(v)}


def _counts_drift(
    lists: list[int] | None, column: str = "live_counts"
) -> list[tuple[int, dict[str, int], dict[str, int]]]:
    sql = _COUNTS_DRIFT_SQL.format(column=column, **_COUNT_VIEWS[column])
    with connection.cursor() as cursor:
        cursor.execute(sql, {"lists": lists})
        rows = cursor.fetchall()
    drift = []
    for pk, stored, actual in rows:
        stored_counts, actual_counts = _counts(stored), _counts(actual)
        if stored_counts != actual_counts:  # jsonb may differ in form only (zeros, 1 vs 1.0)
            drift.append((int(pk), stored_counts, actual_counts))
    return drift


def list_counts_reconcile(*, repair: bool) -> list[CountDrift]:
    """Compare every list's live counts with its live entries, and every anonymous list's
    published counts with its published view; with ``repair``, set them right.

    Returns the drift found (before any repair). A repair locks each drifted list's row, then
    counts again in a statement that starts after the lock is held, so a write that was in
    flight either committed first (and is counted) or waits and adds its own change afterwards.
    A published view changes only under the change sequence's lock (:func:`publish_pending`),
    which its repair takes too.
    """
    found = [
        (column, pk, stored, actual)
        for column in _COUNT_VIEWS
        for pk, stored, actual in _counts_drift(None, column)
    ]
    with scopes_disabled():
        ids = dict(
            HashList.objects.filter(pk__in=[pk for _, pk, _, _ in found]).values_list(
                "pk", "public_id"
            )
        )
    drift = [
        CountDrift(list_pk=pk, public_id=ids.get(pk, ""), stored=stored, actual=actual, column=c)
        for c, pk, stored, actual in found
    ]
    if repair:
        for item in drift:
            with transaction.atomic(), connection.cursor() as cursor:
                if item.column == "published_counts":
                    sequence_lock()
                cursor.execute(
                    "SELECT id FROM lists_hashlist WHERE id = %s FOR UPDATE", [item.list_pk]
                )
                for pk, _, actual in _counts_drift([item.list_pk], item.column):
                    cursor.execute(
                        f"UPDATE lists_hashlist SET {item.column} = %s::jsonb WHERE id = %s",  # noqa: S608 (a key of _COUNT_VIEWS)
                        [json.dumps(actual), pk],
                    )
    return drift


# --- change-feed reads --------------------------------------------------------------------------

FEED_CHUNK_ROWS = 50_000
"""Rows fetched at a time by the streaming reads below, so a big index build stays flat."""

# What the match index keeps of a hash is which lists hold it, as *holder keys*: ``2 * list id``
# for a live entry (what the owner, a source's subscribers and an open list's subscribers see)
# and ``2 * list id + 1`` for an entry in an anonymous list's published view (what everyone but
# its owner sees: published, and its removal not yet published). A hash with no key has left the
# merged set. A publication changes a hash's keys, so it touches the hash like an add does.


def holder_key(list_pk: int, *, published: bool) -> int:
    """The holder key (above) under which a caller matches the list ``list_pk``."""
    return 2 * list_pk + (1 if published else 0)


# One statement, one snapshot: the rows touched since ``since`` with their holder keys, and the
# change number they are complete up to. The LEFT JOIN returns the number even when nothing of
# these types changed.
_DELTA_SQL = """
WITH bound AS (SELECT last FROM lists_changecounter WHERE id = 1),
touched AS (
    SELECT hash_id FROM lists_entry
     WHERE added_seq > %(since)s AND added_seq <= (SELECT last FROM bound)
    UNION
    SELECT hash_id FROM lists_entry
     WHERE removed_seq > %(since)s AND removed_seq <= (SELECT last FROM bound)
    UNION
    SELECT hash_id FROM lists_entry
     WHERE published_seq > %(since)s AND published_seq <= (SELECT last FROM bound)
    UNION
    SELECT hash_id FROM lists_entry
     WHERE unpublished_seq > %(since)s AND unpublished_seq <= (SELECT last FROM bound)
),
changed AS (
    SELECT h.id, h.signal_type, h.value,
           ARRAY(SELECT k FROM (
               SELECT e.hash_list_id * 2 AS k FROM lists_entry e
                WHERE e.hash_id = h.id AND e.removed_seq IS NULL
               UNION
               SELECT e.hash_list_id * 2 + 1 FROM lists_entry e
                WHERE e.hash_id = h.id AND e.published_seq IS NOT NULL AND e.unpublished_seq IS NULL
           ) AS held ORDER BY k) AS keys
      FROM lists_hash h JOIN touched t ON t.hash_id = h.id
     WHERE h.signal_type = ANY(%(types)s)
)
SELECT b.last, c.id, c.signal_type, c.value, c.keys FROM bound b LEFT JOIN changed c ON TRUE
"""

_LIVE_SQL = """
WITH bound AS (SELECT last FROM lists_changecounter WHERE id = 1),
held AS (
    SELECT e.hash_id, e.hash_list_id * 2 AS k FROM lists_entry e WHERE e.removed_seq IS NULL
    UNION ALL
    SELECT e.hash_id, e.hash_list_id * 2 + 1 FROM lists_entry e
     WHERE e.published_seq IS NOT NULL AND e.unpublished_seq IS NULL
),
live AS (
    SELECT h.id, h.signal_type, h.value, array_agg(DISTINCT held.k ORDER BY held.k) AS keys
      FROM held JOIN lists_hash h ON h.id = held.hash_id
     WHERE h.signal_type = ANY(%(types)s)
     GROUP BY h.id
)
SELECT b.last, l.id, l.signal_type, l.value, l.keys FROM bound b LEFT JOIN live l ON TRUE
"""

# Distinct hashes of the perceptual types with a live entry at change number ``v``: what an
# index at ``v`` must hold. History is never rewritten (a removal only sets a later number), so
# this is exact for any ``v`` the sequence has passed.
_LIVE_AT_SQL = """
SELECT h.signal_type, count(*)
  FROM lists_hash h
 WHERE h.signal_type = ANY(%(types)s)
   AND EXISTS (SELECT 1 FROM lists_entry e
                WHERE e.hash_id = h.id AND e.added_seq <= %(v)s
                  AND (e.removed_seq IS NULL OR e.removed_seq > %(v)s
                       OR (e.published_seq <= %(v)s
                           AND (e.unpublished_seq IS NULL OR e.unpublished_seq > %(v)s))))
 GROUP BY h.signal_type
"""


def _chunks(sql: str, params: Mapping[str, Any]) -> Iterator[list[tuple[Any, ...]]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        while rows := cursor.fetchmany(FEED_CHUNK_ROWS):
            yield rows


def hashes_touched_since(*, since: int, types: list[str]) -> Iterator[list[tuple[Any, ...]]]:
    """Every hash of ``types`` an add, removal or publication touched after ``since``, in chunks
    of rows ``(last change number, hash id, type, value, holder keys)`` (no keys: it left the
    merged set); one snapshot, so the number is the one the rows are complete up to (a row of
    NULLs but the number when nothing changed)."""
    return _chunks(_DELTA_SQL, {"since": since, "types": types})


def live_hashes(*, types: list[str]) -> Iterator[list[tuple[Any, ...]]]:
    """Every hash of ``types`` with a live entry in any list, in chunks of rows
    ``(last change number, hash id, type, value, holder keys)``, all read in one snapshot."""
    return _chunks(_LIVE_SQL, {"types": types})


def live_sizes_at(*, version: int, types: list[str]) -> dict[str, int]:
    """How many distinct hashes of each of ``types`` had a live entry at change ``version``."""
    with connection.cursor() as cursor:
        cursor.execute(_LIVE_AT_SQL, {"types": types, "v": version})
        counted = {str(name): int(n) for name, n in cursor.fetchall()}
    return {name: counted.get(name, 0) for name in types}


# The upstream record holding an entry of a source's list, for the entry's provenance: its key,
# which is the record's id upstream (the least, should several records hold the hash); NULL for
# other lists and once no record holds the hash. The keys the runner makes up for unkeyed
# records (lists.sources.pages: "category:type:hex") are no upstream id and are passed over.
# One probe of the records' GIN index, for the rows of source lists only. Formatted with the
# names of the list row (``l``) and of the columns of the entry's hash.
RECORD_KEY_SQL = """
CASE WHEN l.source_id IS NULL THEN NULL ELSE (
    SELECT min(r.key) FROM lists_sourcerecord r
     WHERE r.hash_ids @> ARRAY[{hash_id}]::bigint[] AND r.hash_list_id = l.id
       AND r.key <> l.category || ':' || {signal_type} || ':' || encode({value}, 'hex'))
END"""

# What the entry's list says of its entries' provenance (with ``l``, the list's row): whether
# its owner shares their labels, and how its source (if any) verifies them.
LIST_PROVENANCE_SQL = """
l.share_classification,
COALESCE((SELECT src.verification FROM lists_source src WHERE src.id = l.source_id), '')"""

# Everything the feed says after a position (seq, sub), in that order:
# - entry changes (adds, removes) inside an access interval (lo, hi) of a list: the caller's own
#   lists have (0, forever), a community list one interval per grant;
# - at a grant (seq g), an add for each entry of the list live at g;
# - at a revoke (seq r), a remove for each entry of the list live at r;
# - the same three for the published view of anonymous lists (``pub``), by publication numbers.
# Expanded items share their event's seq and are ordered by the entry's added_seq (``sub``);
# plain changes have sub 0. Each arm reads an index in order and stops after ``limit`` rows.
_FEED_SQL = """
WITH iv(list_id, lo, hi, pub) AS (
    SELECT * FROM unnest(%(iv_list)s::bigint[], %(iv_lo)s::bigint[], %(iv_hi)s::bigint[],
                         %(iv_pub)s::boolean[])
), ev(list_id, seq, granted, pub) AS (
    SELECT * FROM unnest(%(ev_list)s::bigint[], %(ev_seq)s::bigint[], %(ev_granted)s::boolean[],
                         %(ev_pub)s::boolean[])
)
SELECT * FROM (
    (SELECT e.added_seq AS seq, 0::bigint AS sub, 'add' AS op, e.hash_list_id, h.signal_type,
            h.value,
            e.hash_id, e.labels, e.added_at
       FROM iv JOIN lists_entry e ON e.hash_list_id = iv.list_id AND NOT iv.pub
                AND e.added_seq > iv.lo AND e.added_seq < iv.hi
       JOIN lists_hash h ON h.id = e.hash_id
      WHERE e.added_seq > %(after)s
      ORDER BY e.added_seq LIMIT %(limit)s)
    UNION ALL
    (SELECT e.removed_seq, 0::bigint, 'remove', e.hash_list_id, h.signal_type, h.value,
            e.hash_id, e.labels, e.added_at
       FROM iv JOIN lists_entry e ON e.hash_list_id = iv.list_id AND NOT iv.pub
                AND e.removed_seq > iv.lo AND e.removed_seq < iv.hi
       JOIN lists_hash h ON h.id = e.hash_id
      WHERE e.removed_seq > %(after)s
      ORDER BY e.removed_seq LIMIT %(limit)s)
    UNION ALL
    (SELECT ev.seq, e.added_seq, CASE WHEN ev.granted THEN 'add' ELSE 'remove' END,
            e.hash_list_id, h.signal_type, h.value,
            e.hash_id, e.labels, e.added_at
       FROM ev JOIN lists_entry e ON e.hash_list_id = ev.list_id AND NOT ev.pub
                AND e.added_seq < ev.seq AND (e.removed_seq IS NULL OR e.removed_seq > ev.seq)
       JOIN lists_hash h ON h.id = e.hash_id
      WHERE (ev.seq, e.added_seq) > (%(after)s, %(after_sub)s)
      ORDER BY ev.seq, e.added_seq LIMIT %(limit)s)
    UNION ALL
    (SELECT e.published_seq, 0::bigint, 'add', e.hash_list_id, h.signal_type, h.value,
            e.hash_id, e.labels, e.added_at
       FROM iv JOIN lists_entry e ON e.hash_list_id = iv.list_id AND iv.pub
                AND e.published_seq > iv.lo AND e.published_seq < iv.hi
       JOIN lists_hash h ON h.id = e.hash_id
      WHERE e.published_seq > %(after)s
      ORDER BY e.published_seq LIMIT %(limit)s)
    UNION ALL
    (SELECT e.unpublished_seq, 0::bigint, 'remove', e.hash_list_id, h.signal_type, h.value,
            e.hash_id, e.labels, e.added_at
       FROM iv JOIN lists_entry e ON e.hash_list_id = iv.list_id AND iv.pub
                AND e.unpublished_seq > iv.lo AND e.unpublished_seq < iv.hi
       JOIN lists_hash h ON h.id = e.hash_id
      WHERE e.unpublished_seq > %(after)s
      ORDER BY e.unpublished_seq LIMIT %(limit)s)
    UNION ALL
    (SELECT ev.seq, e.published_seq, CASE WHEN ev.granted THEN 'add' ELSE 'remove' END,
            e.hash_list_id, h.signal_type, h.value,
            e.hash_id, e.labels, e.added_at
       FROM ev JOIN lists_entry e ON e.hash_list_id = ev.list_id AND ev.pub
                AND e.published_seq < ev.seq
                AND (e.unpublished_seq IS NULL OR e.unpublished_seq > ev.seq)
       JOIN lists_hash h ON h.id = e.hash_id
      WHERE (ev.seq, e.published_seq) > (%(after)s, %(after_sub)s)
      ORDER BY ev.seq, e.published_seq LIMIT %(limit)s)
) AS changes
ORDER BY seq, sub LIMIT %(limit)s
"""
# The page with each entry's provenance (its labels, when it was added, its upstream record),
# looked up for the page's rows only, after the limit.
_FEED_PAGE_SQL = (
    """
SELECT c.seq, c.sub, c.op, c.hash_list_id, c.signal_type, c.value, c.labels, c.added_at, """
    + RECORD_KEY_SQL.format(hash_id="c.hash_id", signal_type="c.signal_type", value="c.value")
    + ","
    + LIST_PROVENANCE_SQL
    + """
  FROM ("""
    + _FEED_SQL
    + """) AS c
  JOIN lists_hashlist l ON l.id = c.hash_list_id
 ORDER BY c.seq, c.sub
"""
)


def feed_rows(
    *,
    intervals: Iterable[tuple[int, int, int]],
    events: Iterable[tuple[int, int, bool]],
    after: int,
    after_sub: int,
    limit: int,
    published: frozenset[int] = frozenset(),
) -> list[tuple[Any, ...]]:
    """The first ``limit`` changes after position (``after``, ``after_sub``) of a reader that
    may see each list during its ``intervals`` ``(list, from seq, until seq)``, with access
    ``events`` ``(seq, list, granted)`` expanded to the list's entries live at that moment.
    The lists in ``published`` (anonymous lists of other owners) are read in their published
    view: their changes at their publication numbers.

    Rows are ``(seq, sub, "add"/"remove", list id, type, value, labels, added at, upstream
    record id, share classification, verification)`` in feed order (the export:
    ``matching.selectors.export_page``, which gets intervals and events from ``sharing``); the
    last five are the entry's provenance and what its list says of it (as in
    :class:`LiveEntry`), for the caller to show as far as the reader may see it.
    """
    intervals, events = list(intervals), list(events)
    if not intervals:
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            _FEED_PAGE_SQL,
            {
                "iv_list": [i[0] for i in intervals],
                "iv_lo": [i[1] for i in intervals],
                "iv_hi": [i[2] for i in intervals],
                "iv_pub": [i[0] in published for i in intervals],
                "ev_list": [e[1] for e in events],
                "ev_seq": [e[0] for e in events],
                "ev_granted": [e[2] for e in events],
                "ev_pub": [e[1] in published for e in events],
                "after": after,
                "after_sub": after_sub,
                "limit": limit,
            },
        )
        return cursor.fetchall()


# The live entries, in the given lists, of the given hashes (by id, or by exact value), with
# what a match shows of their provenance (labels, time added, upstream record).
_HELD_SQL = """
WITH wanted AS (
    SELECT id FROM lists_hash WHERE id = ANY(%(ids)s)
    UNION
    SELECT h.id FROM lists_hash h
      JOIN unnest(%(types)s::varchar[], %(values)s::bytea[]) AS q(signal_type, value)
        ON h.signal_type = q.signal_type AND h.value = q.value
), held AS (
    SELECT e.hash_list_id, h.id AS hash_id, h.signal_type, h.value, e.labels, e.added_at
      FROM wanted w
      JOIN lists_hash h ON h.id = w.id
      JOIN lists_entry e ON e.hash_id = h.id
     WHERE e.removed_seq IS NULL
       AND (e.hash_list_id = ANY(%(lists)s)
            OR (e.hash_list_id = ANY(%(published)s) AND e.published_seq IS NOT NULL))
    UNION ALL
    SELECT e.hash_list_id, h.id, h.signal_type, h.value, e.labels, e.added_at
      FROM wanted w
      JOIN lists_hash h ON h.id = w.id
      JOIN lists_entry e ON e.hash_id = h.id
     WHERE e.published_seq IS NOT NULL AND e.removed_seq IS NOT NULL
       AND e.unpublished_seq IS NULL
       AND e.hash_list_id = ANY(%(published)s)
)
"""
_ENTRIES_SQL = (
    _HELD_SQL
    + """
SELECT held.hash_list_id, held.hash_id, held.signal_type, held.value, held.labels,
       held.added_at, """
    + RECORD_KEY_SQL.format(
        hash_id="held.hash_id", signal_type="held.signal_type", value="held.value"
    )
    + ","
    + LIST_PROVENANCE_SQL
    + """
  FROM held JOIN lists_hashlist l ON l.id = held.hash_list_id
"""
)


class LiveEntry(NamedTuple):
    """A live entry as the match service reads it: where, which hash, and its provenance."""

    list_pk: int
    hash_id: int
    signal_type: str
    value: bytes
    labels: list[str]
    added_at: dt.datetime
    record_id: str | None  # the upstream record's id, for an entry of a source's list
    # Of the entry's list: whether its owner shares the labels; how its source verifies.
    share_classification: bool
    verification: str


def live_entries_of(
    *,
    hash_ids: Iterable[int],
    exact: Iterable[tuple[str, bytes]],
    lists: Iterable[int],
    published: Iterable[int] = (),
) -> list[LiveEntry]:
    """Every live entry in ``lists`` of the given hashes, named by id (``hash_ids``, from the
    match index) or by exact value (``exact``), and every entry live in the published view of
    the anonymous lists ``published``; one statement, whatever their number. Each comes with
    its labels, the time it was added and, in a source's list, its upstream record's id: the
    caller decides what of them the reader may see (sharing.selectors.MatchableList)."""
    exact_pairs = sorted(set(exact))
    with connection.cursor() as cursor:
        cursor.execute(
            _ENTRIES_SQL,
            {
                "ids": sorted(set(hash_ids)),
                "types": [t for t, _ in exact_pairs],
                "values": [v for _, v in exact_pairs],
                "lists": list(lists),
                "published": list(published),
            },
        )
        return [
            LiveEntry(row[0], row[1], row[2], bytes(row[3]), list(row[4] or ()), *row[5:9])
            for row in cursor.fetchall()
        ]


# --- the published view of anonymous lists ------------------------------------------------------
#
# Other organisations see an anonymous list's changes only once a batch has published them
# (DESIGN.md, the match path): the batch numbers every due add and removal from the change
# sequence at release, in random order, so neither the numbers nor the times of the changes can
# be paired with the owner's identified lists. Everything another organisation reads of an
# anonymous list (its matches, the export, its entry pages, its size) reads the published
# columns; the owner reads the entries themselves.

# The due changes: adds to anonymous lists beyond what the last batch considered that are still
# live and unpublished, and removals of published entries not yet published (in any list: a list
# may have stopped being anonymous since). Numbered in random order from %(base)s; returns the
# changed entries' list, type and whether it was an add.
_PUBLISH_SQL = """
WITH due_adds AS (
    SELECT e.id, true AS added
      FROM lists_hashlist l
      JOIN lists_entry e ON e.hash_list_id = l.id AND e.added_seq > l.published_through
     WHERE l.visibility = 'anonymous' AND l.deleted_at IS NULL
       AND e.published_seq IS NULL AND e.removed_seq IS NULL
), due_removals AS (
    SELECT e.id, false AS added FROM lists_entry e
     WHERE e.published_seq IS NOT NULL AND e.removed_seq IS NOT NULL AND e.unpublished_seq IS NULL
), numbered AS (
    SELECT id, added, %(base)s + row_number() OVER (ORDER BY random()) AS n
      FROM (SELECT * FROM due_adds UNION ALL SELECT * FROM due_removals) AS due
), done AS (
    UPDATE lists_entry e
       SET published_seq = CASE WHEN nb.added THEN nb.n ELSE e.published_seq END,
           unpublished_seq = CASE WHEN nb.added THEN e.unpublished_seq ELSE nb.n END
      FROM numbered nb
     WHERE e.id = nb.id
    RETURNING e.hash_list_id, e.hash_id, nb.added
)
SELECT d.hash_list_id, h.signal_type, d.added, count(*)
  FROM done d JOIN lists_hash h ON h.id = d.hash_id
 GROUP BY d.hash_list_id, h.signal_type, d.added
"""


@transaction.atomic
def publish_pending() -> int:
    """Publish every due change of anonymous lists (see above) as one batch, in random order;
    returns how many changes it published.

    Holds the change sequence's lock while it numbers the batch, so the numbers follow every
    change committed before and precede every change after; updates the published counts of
    the lists it touched and marks every anonymous list's adds as considered. The caller
    (sharing.services.anonymous_publish) then releases the access changes of anonymous lists.
    """
    last = sequence_lock()
    with connection.cursor() as cursor:
        cursor.execute(_PUBLISH_SQL, {"base": last})
        rows = cursor.fetchall()
    count = sum(int(n) for *_, n in rows)
    sequence_advance(count)
    if any(added for _, _, added, _ in rows):
        entries_entered.send(sender=None)
    deltas: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for list_pk, signal_type, added, n in rows:
        deltas[list_pk][signal_type] += int(n) if added else -int(n)
    now = timezone.now()
    with scopes_disabled():
        for hash_list in HashList.objects.filter(pk__in=list(deltas)).only("published_counts"):
            counts = dict(hash_list.published_counts or {})
            for signal_type, delta in deltas[hash_list.pk].items():
                counts[signal_type] = max(0, int(counts.get(signal_type, 0)) + delta)
            HashList.objects.filter(pk=hash_list.pk).update(
                published_counts={t: n for t, n in counts.items() if n}, published_at=now
            )
        # Including the lists made anonymous since the last batch (-1): others see them now.
        HashList.objects.filter(
            visibility=HashList.Visibility.ANONYMOUS, published_through__lt=last
        ).update(published_through=last)
    return count


PUBLICATION_PENDING = -1
"""``published_through`` of an anonymous list no publication has taken in yet: others do not see
it at all, and every live, unpublished add of it is due."""


def publication_restart(*, list_pks: Iterable[int]) -> None:
    """Make every live, unpublished add of these lists due again, and hide them from others
    until the next publication (a list has become anonymous, or its owner was approved again)."""
    with scopes_disabled():
        HashList.objects.filter(pk__in=list(list_pks)).update(published_through=PUBLICATION_PENDING)


# --- bulk writes of the source runner (lists.sources.apply) ------------------------------------


def sql_rows(sql: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    """Run one statement on Django's own connection (so in the caller's transaction) and return
    its rows, binding parameters on the server.

    Server-side binding lets arrays travel in binary (``%(name)b``): building the text form of a
    bytea array escapes every byte in Python, which was the costliest part of a page's own work.
    Never prepared: a plan cached while the tables were small would outlive their growth.
    """
    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, params, prepare=False)
        return cursor.fetchall() if cursor.description is not None else []


# The merged set for a source page (lists.sources.pages): upsert it and read every id back in
# one round trip. RETURNING gives the new
# hashes; the look-up, made only for the others (COALESCE evaluates it only when RETURNING gave
# nothing), reads the statement's snapshot, so it finds the hashes that existed before; a hash
# another transaction committed meanwhile is in neither (see lists.sources.pages). Each look-up is a
# correlated subquery, so it goes through the unique index whatever the planner believes of the
# table's size (a join may hash the whole merged set when statistics lag); OFFSET 0 keeps the
# outer filter from being merged into the subquery with a copy of the look-up, which made it
# twice for every known hash. ``made`` tells the hashes this statement inserted.
HASH_IDS_UPSERT = """
WITH q AS MATERIALIZED (
    SELECT * FROM unnest(%(types)b::text[], %(values)b::bytea[]) WITH ORDINALITY AS q(t, v, n)
), fresh AS (
    INSERT INTO lists_hash (signal_type, value)
    SELECT t, v FROM q ORDER BY n
    ON CONFLICT DO NOTHING
    RETURNING id, signal_type, value
)
SELECT n, id, made FROM (
    SELECT q.n, COALESCE(
               f.id,
               (SELECT h.id FROM lists_hash h WHERE h.signal_type = q.t AND h.value = q.v)
           ) AS id,
           f.id IS NOT NULL AS made
      FROM q LEFT JOIN fresh f ON f.signal_type = q.t AND f.value = q.v
    OFFSET 0
) AS known
WHERE id IS NOT NULL
"""

HASH_IDS_READ = """
SELECT n, id FROM (
    SELECT q.n, (SELECT h.id FROM lists_hash h WHERE h.signal_type = q.t AND h.value = q.v) AS id
      FROM unnest(%(types)b::text[], %(values)b::bytea[]) WITH ORDINALITY AS q(t, v, n)
    OFFSET 0
) AS known
WHERE id IS NOT NULL
"""


def quoted_array(values: Iterable[str]) -> str:
    """A PostgreSQL array literal of any strings (each quoted, backslashes and quotes escaped)."""
    escaped = (v.replace("\\", "\\\\").replace('"', '\\"') for v in values)
    return "{" + ",".join(f'"{v}"' for v in escaped) + "}"


# New live entries for every list of the page in one statement: each row checks the live-entry
# unique index for itself (a correlated subquery, never a join that could scan the table) unless
# its hash was new to the merged set, and the rows that pass take consecutive change numbers
# after "base" (in list, then hash order). Each distinct label set is cast once and joined by its
# number; each row brings its entry's public id. The arrays travel as text literals, which
# PostgreSQL parses faster than Python packs them in binary.
_ADD_ENTRIES = """
WITH label_sets AS MATERIALIZED (
    SELECT n, literal::varchar[] AS labels
      FROM unnest(%(label_sets)s::text[]) WITH ORDINALITY AS s(literal, n)
), fresh AS (
    SELECT q.list_id, q.hash_id, q.signal_type, q.label_set, q.public_id,
           row_number() OVER (ORDER BY q.list_id, q.hash_id) AS rn
      FROM unnest(%(lists)s::bigint[], %(ids)s::bigint[], %(types)s::text[],
                  %(label_set_of)s::int[], %(public_ids)s::text[], %(check)s::bool[])
           AS q(list_id, hash_id, signal_type, label_set, public_id, check_live)
     WHERE CASE WHEN q.check_live
                THEN (SELECT e.id FROM lists_entry e
                       WHERE e.hash_list_id = q.list_id AND e.hash_id = q.hash_id
                         AND e.removed_seq IS NULL) IS NULL
                ELSE true END
), inserted AS (
    INSERT INTO lists_entry (
        hash_list_id, hash_id, public_id, labels, note, added_seq, added_at,
        added_by_user_id, added_by_key_id, added_by_label, removed_by_label, removed_reason
    )
    SELECT f.list_id, f.hash_id, f.public_id, s.labels, '',
           %(base)s + f.rn, %(now)s, NULL, NULL, %(label)s, '', ''
      FROM fresh f JOIN label_sets s ON s.n = f.label_set
)
SELECT list_id, signal_type, count(*) FROM fresh GROUP BY list_id, signal_type
"""


def entries_add_planned(
    by_pk: Mapping[int, HashList], arrays: Mapping[str, str], rows: int, who: Provenance
) -> int:
    """Live entries for the plan's hashes not live in their list yet. Returns how many.

    The hashes exist already (a source page upserted them: ``lists.sources.pages``), so this is
    one INSERT for the whole page, under one hold of the sequence lock. Hashes the run itself
    inserted into the merged set are not looked for: no entry can hold them yet (the run is the
    only writer of its lists), and the live-entry unique index would still refuse a second one.
    """
    if not rows:
        return 0
    base = sequence_lock()
    counted = sql_rows(
        _ADD_ENTRIES,
        {**arrays, "base": base, "now": timezone.now(), "label": who.label},
    )
    by_list: dict[int, dict[str, int]] = defaultdict(dict)
    for list_pk, signal_type, count in counted:
        by_list[list_pk][signal_type] = int(count)
    added = sum(sum(by_type.values()) for by_type in by_list.values())
    sequence_advance(added)
    if added:
        entries_entered.send(sender=None)
    for list_pk, by_type in sorted(by_list.items()):
        counts_change(by_pk[list_pk], by_type, sign=1)
    return added


def entries_relabel(hash_list: HashList, labels_by_hash: Mapping[int, list[str]]) -> None:
    """An update may change a record's labels (e.g. its classification): follow on live entries."""
    ordered = sorted(labels_by_hash.items())
    # The live entries through one index probe each (see HASH_ID_TARGETS).
    sql_rows(
        "UPDATE lists_entry e SET labels = t.labels"
        "  FROM (SELECT live.id, q.labels::varchar[] AS labels"
        "          FROM unnest(%(ids)b::bigint[], %(labels)b::text[]) AS q(id, labels)"
        "          JOIN LATERAL (SELECT l.id, l.labels FROM lists_entry l"
        "                         WHERE l.hash_list_id = %(list)s AND l.hash_id = q.id"
        "                           AND l.removed_seq IS NULL OFFSET 0) AS live ON true"
        "         WHERE live.labels <> q.labels::varchar[]) AS t"
        " WHERE e.id = t.id",
        {
            "ids": [hash_id for hash_id, _ in ordered],
            "labels": [quoted_array(labels) for _, labels in ordered],
            "list": hash_list.pk,
        },
    )


# The live entries of the hashes ``ids`` (for entries_tombstone): one probe of the live-entry
# index per hash (a lateral subquery that OFFSET 0 keeps from being flattened into a join, which
# the planner may run as a scan of the whole list while the import outgrows the statistics), and
# the type from a correlated subquery for the same reason.
HASH_ID_TARGETS = """
    SELECT e.id, (SELECT h.signal_type FROM lists_hash h WHERE h.id = e.hash_id) AS signal_type
      FROM unnest(%(ids)s::bigint[]) AS q(id)
      JOIN LATERAL (SELECT l.id, l.hash_id FROM lists_entry l
                     WHERE l.hash_list_id = %(list)s AND l.hash_id = q.id
                       AND l.removed_seq IS NULL OFFSET 0) AS e ON true
"""


# --- entries that left lists (matching.retractions) ---------------------------------------------

# One snapshot: the entries whose removal (the owner's view, ``removed_seq``) or whose removal's
# publication (others' view of an anonymous list, ``unpublished_seq``) has a change number after
# %(after)s, up to the last committed one, in change order, at most %(limit)s; and that last
# number (the row of NULLs but the number when nothing left). Each arm reads its unique or
# partial index in order.
_LEFT_SQL = """
WITH bound AS (SELECT last FROM lists_changecounter WHERE id = 1),
gone AS (
    (SELECT e.removed_seq AS seq, e.hash_list_id, e.hash_id, false AS published
       FROM lists_entry e
      WHERE e.removed_seq > %(after)s AND e.removed_seq <= (SELECT last FROM bound)
      ORDER BY e.removed_seq LIMIT %(limit)s)
    UNION ALL
    (SELECT e.unpublished_seq, e.hash_list_id, e.hash_id, true
       FROM lists_entry e
      WHERE e.unpublished_seq > %(after)s AND e.unpublished_seq <= (SELECT last FROM bound)
      ORDER BY e.unpublished_seq LIMIT %(limit)s)
    ORDER BY seq LIMIT %(limit)s
)
SELECT b.last, g.seq, g.hash_list_id, g.hash_id, g.published
  FROM bound b LEFT JOIN gone g ON TRUE
 ORDER BY g.seq
"""


@dataclass(frozen=True)
class LeftEntry:
    """An entry that left a list's view at change ``seq``: its owner's view (``published``
    False: the entry was removed) or others' view of an anonymous list (True: the removal
    was published)."""

    seq: int
    list_pk: int
    hash_id: int
    published: bool


def entries_left_since(*, after: int, limit: int) -> tuple[list[LeftEntry], int]:
    """The first ``limit`` entries that left a list after change ``after``, in change order,
    and the change number the answer is complete up to: the last row's when ``limit`` cut it
    short, else the last committed change (read in the same snapshot, so a removal that
    commits later always has a higher number: see lists.models)."""
    with connection.cursor() as cursor:
        cursor.execute(_LEFT_SQL, {"after": after, "limit": limit})
        rows = cursor.fetchall()
    last = int(rows[0][0]) if rows and rows[0][0] is not None else after
    left = [
        LeftEntry(int(seq), int(list_pk), int(hash_id), bool(published))
        for _, seq, list_pk, hash_id, published in rows
        if seq is not None
    ]
    if len(left) >= limit:
        last = left[-1].seq
    return left, max(last, after)


# Whether each (list, hash, view) is still held: a live entry in the owner's view, or an entry
# whose publication stands in others' view.
_STILL_HELD_SQL = """
SELECT q.list_id, q.hash_id, q.published
  FROM unnest(%(lists)s::bigint[], %(hashes)s::bigint[], %(published)s::boolean[])
       AS q(list_id, hash_id, published)
 WHERE EXISTS (SELECT 1 FROM lists_entry e
                WHERE e.hash_list_id = q.list_id AND e.hash_id = q.hash_id
                  AND CASE WHEN q.published
                           THEN e.published_seq IS NOT NULL AND e.unpublished_seq IS NULL
                           ELSE e.removed_seq IS NULL END)
"""


def entries_still_held(
    pairs: Iterable[tuple[int, int, bool]],
) -> set[tuple[int, int, bool]]:
    """Which of ``(list id, hash id, published view)`` still hold the hash in that view."""
    wanted = sorted(set(pairs))
    if not wanted:
        return set()
    with connection.cursor() as cursor:
        cursor.execute(
            _STILL_HELD_SQL,
            {
                "lists": [p[0] for p in wanted],
                "hashes": [p[1] for p in wanted],
                "published": [p[2] for p in wanted],
            },
        )
        return {(int(a), int(b), bool(c)) for a, b, c in cursor.fetchall()}


# --- entries that entered lists (the one "a hash entered a list" hook: matching.retroactive) ------

# Sent inside the transaction that made entries enter a list's view: live adds by any path (by
# hand, by file, a source's import) and publications of anonymous lists' adds. Receivers queue
# their work for after the commit and then read :func:`entries_entered_since`; lists never
# imports them (DESIGN.md: a lower part announces through a signal).
entries_entered = Signal()

# One snapshot: the entries whose add (the owner's, a source's or an open list's view,
# ``added_seq``) or whose add's publication (others' view of an anonymous list,
# ``published_seq``) has a change number after %(after)s, up to the last committed one, still in
# that view, in change order, at most %(limit)s; and that last number. Each arm reads its
# unique or partial index in order.
_ENTERED_SQL = """
WITH bound AS (SELECT last FROM lists_changecounter WHERE id = 1),
came AS (
    (SELECT e.added_seq AS seq, e.hash_list_id, e.hash_id, false AS published
       FROM lists_entry e
      WHERE e.added_seq > %(after)s AND e.added_seq <= (SELECT last FROM bound)
        AND e.removed_seq IS NULL
      ORDER BY e.added_seq LIMIT %(limit)s)
    UNION ALL
    (SELECT e.published_seq, e.hash_list_id, e.hash_id, true
       FROM lists_entry e
      WHERE e.published_seq > %(after)s AND e.published_seq <= (SELECT last FROM bound)
        AND e.unpublished_seq IS NULL
      ORDER BY e.published_seq LIMIT %(limit)s)
    ORDER BY seq LIMIT %(limit)s
)
SELECT b.last, c.seq, c.hash_list_id, c.hash_id, h.signal_type, h.value, c.published
  FROM bound b LEFT JOIN came c ON TRUE LEFT JOIN lists_hash h ON h.id = c.hash_id
 ORDER BY c.seq
"""


@dataclass(frozen=True)
class EnteredEntry:
    """An entry that entered a list's view at change ``seq``: its owner's view, which is also
    every reader's view of a source's or an open list (``published`` False: the entry was
    added), or others' view of an anonymous list (True: the add was published)."""

    seq: int
    list_pk: int
    hash_id: int
    signal_type: str
    value: bytes
    published: bool


def entries_entered_since(*, after: int, limit: int) -> tuple[list[EnteredEntry], int]:
    """The first ``limit`` entries that entered a list's view after change ``after`` and are
    still in it, in change order, and the change number the answer is complete up to: the last
    row's when ``limit`` cut it short, else the last committed change (read in the same
    snapshot, so an add that commits later always has a higher number: see lists.models)."""
    with connection.cursor() as cursor:
        cursor.execute(_ENTERED_SQL, {"after": after, "limit": limit})
        rows = cursor.fetchall()
    last = int(rows[0][0]) if rows and rows[0][0] is not None else after
    entered = [
        EnteredEntry(int(seq), int(list_pk), int(hash_id), str(kind), bytes(value), bool(pub))
        for _, seq, list_pk, hash_id, kind, value, pub in rows
        if seq is not None
    ]
    # Rows were cut at ``limit`` over both arms together: an arm's later rows wait for the next
    # call, which starts after the last row returned (numbers are unique across both arms).
    if len(entered) >= limit:
        last = entered[-1].seq
    return entered, max(last, after)


# --- entries live at a moment (for a reader's per-entry exceptions: sharing.policy) --------------

# Of the (list, hash, change number, published view) moments, those at which the entry was live
# in that view: by its change numbers, or for the published view of an anonymous list, by its
# publication numbers.
_ENTRIES_LIVE_AT_SQL = """
SELECT q.l, q.h, q.s
  FROM unnest(%(lists)s::bigint[], %(hashes)s::bigint[], %(seqs)s::bigint[], %(pub)s::bool[])
       AS q(l, h, s, p)
 WHERE EXISTS (
       SELECT 1 FROM lists_entry e
        WHERE e.hash_list_id = q.l AND e.hash_id = q.h
          AND CASE WHEN q.p
                   THEN e.published_seq < q.s
                        AND (e.unpublished_seq IS NULL OR e.unpublished_seq > q.s)
                   ELSE e.added_seq < q.s AND (e.removed_seq IS NULL OR e.removed_seq > q.s)
              END)
"""


def entries_live_at(
    moments: Iterable[tuple[int, int, int, bool]],
) -> set[tuple[int, int, int]]:
    """Of the ``(list pk, hash id, change number, published view)`` moments, the
    ``(list pk, hash id, change number)`` at which that entry was live in that view (a change
    number the sequence has not reached yet asks about now). One statement."""
    wanted = sorted(set(moments))
    if not wanted:
        return set()
    return {
        (row[0], row[1], row[2])
        for row in sql_rows(
            _ENTRIES_LIVE_AT_SQL,
            {
                "lists": [m[0] for m in wanted],
                "hashes": [m[1] for m in wanted],
                "seqs": [m[2] for m in wanted],
                "pub": [m[3] for m in wanted],
            },
        )
    }
