"""Every change to hash lists and their entries. Each service audits what it did.

Adds and removals, whether ten hashes from the API or a million from a file, take one path:
the parsed rows are COPYed into a temporary staging table, the merged set is upserted from it,
and the entries are written with numbers from the change sequence (see ``lists.models``) in a
handful of set-based statements.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import connection, transaction
from django.dispatch import Signal
from django.utils import timezone
from django_scopes import scopes_disabled

from hub.audit import Actor, audit
from hub.errors import ServiceError
from hub.lib.ids import new_ordered_public_ids
from hub.models import Organization
from lists.hashtypes import get_signal_type
from lists.models import HashList

MAX_LABELS = 10
MAX_NOTE = 2000
MAX_REASON = 2000
# The industry classification of CSAM severity (A: prepubescent, B: pubescent; 1: sexual act,
# 2: lascivious exhibition). Written upper case; free tags are written lower case.
CLASSIFICATION_LABELS = ("A1", "A2", "B1", "B2")
_TAG = re.compile(r"^[a-z0-9][a-z0-9_.:-]{0,39}$")

DEFAULT_LISTS = (
    (
        "CSAM",
        HashList.Category.CSAM,
        "Hashes of child sexual abuse material this organisation has confirmed.",
    ),
    (
        "SE",
        HashList.Category.SE,
        "Hashes of sexually exploitative content this organisation removes.",
    ),
)


# --- inputs and results ---------------------------------------------------------------------


@dataclass(frozen=True)
class EntryInput:
    """One submitted hash as text, with optional labels and note."""

    type: str
    value: str
    labels: Sequence[str] = ()
    note: str = ""


@dataclass(frozen=True)
class ItemError:
    index: int
    code: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "code": self.code, "message": self.message}


@dataclass
class AddResult:
    added: int = 0
    already_present: int = 0
    errors: list[ItemError] = field(default_factory=list)


@dataclass
class RemoveResult:
    removed: int = 0
    not_present: int = 0
    errors: list[ItemError] = field(default_factory=list)


@dataclass(frozen=True)
class ParsedEntry:
    index: int
    signal_type: str
    value: bytes
    labels: list[str]
    note: str


# --- parsing --------------------------------------------------------------------------------


def normalise_labels(labels: Iterable[str]) -> list[str]:
    """Classification labels upper case, free tags lower case, de-duplicated in order.

    Raises ServiceError ``bad_label`` or ``too_many_labels``.
    """
    result: list[str] = []
    for raw in labels:
        if not isinstance(raw, str):
            raise ServiceError("bad_label", "Labels must be strings.")
        label = raw.strip()
        if not label:
            continue
        if label.upper() in CLASSIFICATION_LABELS:
            label = label.upper()
        else:
            label = label.lower()
            if not _TAG.match(label):
                raise ServiceError(
                    "bad_label",
                    f"“{raw[:50]}” is not a label: use A1, A2, B1, B2 or a tag of letters, "
                    "digits and _ . : - (at most 40 characters).",
                )
        if label not in result:
            result.append(label)
    if len(result) > MAX_LABELS:
        raise ServiceError("too_many_labels", f"An entry takes at most {MAX_LABELS} labels.")
    return result


def parse_entry(index: int, item: EntryInput) -> ParsedEntry:
    """Parse and canonicalise one submitted hash.

    Raises ServiceError with a per-item code (a HashParseError for the type or the value).
    """
    signal_type = get_signal_type(item.type)
    value = signal_type.parse(item.value)
    if len(item.note) > MAX_NOTE:
        raise ServiceError("note_too_long", f"A note takes at most {MAX_NOTE} characters.")
    return ParsedEntry(
        index, signal_type.name, value, normalise_labels(item.labels), item.note.strip()
    )


def parse_entries(items: Sequence[EntryInput]) -> tuple[list[ParsedEntry], list[ItemError]]:
    parsed: list[ParsedEntry] = []
    errors: list[ItemError] = []
    for index, item in enumerate(items):
        try:
            parsed.append(parse_entry(index, item))
        except ServiceError as error:
            errors.append(ItemError(index, error.code, error.message))
    return parsed, errors


# --- the staging table and the change sequence ----------------------------------------------


def _distinct(rows: Iterable[ParsedEntry]) -> list[ParsedEntry]:
    """The first row of each (type, value), in order: a batch may repeat a hash."""
    first: dict[tuple[str, bytes], ParsedEntry] = {}
    for row in rows:
        first.setdefault((row.signal_type, row.value), row)
    return list(first.values())


def _stage(rows: Iterable[ParsedEntry]) -> None:
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


def _lock_sequence() -> int:
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


def _advance_sequence(count: int) -> None:
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
    first = _lock_sequence() + 1
    _advance_sequence(count)
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
# Sent inside the transaction that made new lists: a source's lists (``source_lists``), so that
# ``sharing`` grants them to the organisations entitled to the source, and, for a deleted list
# (``list_deleted``), so that it revokes them. ``lists`` may not import ``sharing`` (DESIGN.md).
source_lists_created = Signal()
list_deleted = Signal()


@dataclass(frozen=True)
class Provenance:
    """Who adds or removes, as stored on the entry."""

    user_id: int | None
    key_id: int | None
    label: str

    @classmethod
    def of(cls, actor: Actor, label: str | None = None) -> Provenance:
        return cls(
            user_id=actor.user.pk if actor.user else None,
            key_id=actor.api_key.pk if actor.api_key else None,
            label=(label or actor.label)[:200],
        )


def _apply_adds(
    hash_list: HashList, rows: Iterable[ParsedEntry], who: Provenance
) -> tuple[int, int]:
    """Stage, upsert the merged set, add live entries. Returns (valid rows, entries added)."""
    rows = list(rows)
    if not rows:
        return 0, 0
    _stage(_distinct(rows))
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO lists_hash (signal_type, value) "
            "SELECT signal_type, value FROM hashhub_stage "
            "ON CONFLICT (signal_type, value) DO NOTHING"
        )
        last = _lock_sequence()
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
                "user": who.user_id,
                "key": who.key_id,
                "label": who.label,
            },
        )
        by_type = {signal_type: int(n) for signal_type, n in cursor.fetchall()}
    added = sum(by_type.values())
    _advance_sequence(added)
    _count_changes(hash_list, by_type, sign=1)
    return len(rows), added


# Which live entries a removal tombstones: the staged hashes', or the whole list's.
_STAGED_TARGETS = """
    SELECT e.id, h.signal_type FROM lists_entry e
    JOIN lists_hash h ON h.id = e.hash_id
    JOIN hashhub_stage s ON s.signal_type = h.signal_type AND s.value = h.value
    WHERE e.hash_list_id = %(list)s AND e.removed_seq IS NULL
"""
_ALL_TARGETS = """
    SELECT e.id, h.signal_type FROM lists_entry e JOIN lists_hash h ON h.id = e.hash_id
    WHERE e.hash_list_id = %(list)s AND e.removed_seq IS NULL
"""


def _tombstone(
    hash_list: HashList,
    targets: str,
    who: Provenance,
    reason: str,
    params: dict[str, Any] | None = None,
) -> int:
    """Give each target entry the next change number and a removal record. Returns how many.

    ``params`` binds the target query's own parameters beyond ``list``.
    """
    last = _lock_sequence()
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
                "user": who.user_id,
                "key": who.key_id,
                "label": who.label,
                "reason": reason,
                **(params or {}),
            },
        )
        by_type = {signal_type: int(n) for signal_type, n in cursor.fetchall()}
    removed = sum(by_type.values())
    _advance_sequence(removed)
    _count_changes(hash_list, by_type, sign=-1)
    if removed:
        entries_removed.send(sender=None, hash_list=hash_list)
    return removed


def _count_changes(hash_list: HashList, by_type: dict[str, int], *, sign: int) -> None:
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


def _apply_removes(
    hash_list: HashList, rows: Iterable[ParsedEntry], who: Provenance, reason: str
) -> tuple[int, int]:
    """Tombstone the live entries of the given hashes. Returns (distinct rows, entries removed)."""
    rows = _distinct(rows)
    if not rows:
        return 0, 0
    _stage(rows)
    return len(rows), _tombstone(hash_list, _STAGED_TARGETS, who, reason)


# --- services ---------------------------------------------------------------------------------


def audit_list(*, actor: Actor, action: str, hash_list: HashList, metadata: dict[str, Any]) -> None:
    """One audit event about a list, in the list's organisation (every list service writes one)."""
    audit(
        actor=actor,
        action=action,
        organization=hash_list.organization,
        target_type="list",
        target_id=hash_list.public_id,
        metadata=metadata,
    )


def _check_writable(hash_list: HashList) -> None:
    if hash_list.deleted_at is not None:
        raise ServiceError("list_deleted", "This list has been deleted.", status=404)


@transaction.atomic
def entry_add(
    *, hash_list: HashList, items: Sequence[EntryInput], actor: Actor, label: str | None = None
) -> AddResult:
    """Add hashes to a list. Idempotent: a hash already live in the list counts as present.

    Bad items are reported with their index and the rest are added. Writes one audit event.
    """
    _check_writable(hash_list)
    parsed, errors = parse_entries(items)
    valid, added = _apply_adds(hash_list, parsed, Provenance.of(actor, label))
    result = AddResult(added=added, already_present=valid - added, errors=errors)
    if added or errors:
        audit_list(
            actor=actor,
            action="entries.added",
            hash_list=hash_list,
            metadata={
                "added": added,
                "already_present": result.already_present,
                "rejected": len(errors),
            },
        )
    return result


@transaction.atomic
def entry_remove(
    *, hash_list: HashList, items: Sequence[EntryInput], reason: str, actor: Actor
) -> RemoveResult:
    """Tombstone the given hashes' live entries in a list, with a reason. Writes one audit event."""
    _check_writable(hash_list)
    reason = reason.strip()
    if len(reason) > MAX_REASON:
        raise ServiceError("reason_too_long", f"A reason takes at most {MAX_REASON} characters.")
    parsed, errors = parse_entries(items)
    distinct, removed = _apply_removes(hash_list, parsed, Provenance.of(actor), reason)
    result = RemoveResult(removed=removed, not_present=distinct - removed, errors=errors)
    if removed or errors:
        audit_list(
            actor=actor,
            action="entries.removed",
            hash_list=hash_list,
            metadata={
                "removed": removed,
                "not_present": result.not_present,
                "rejected": len(errors),
                "reason": reason,
            },
        )
    return result


def _clean_name(name: str) -> str:
    name = (name or "").strip()
    if not name or len(name) > 120:
        raise ServiceError("invalid_name", "A list needs a name of 1 to 120 characters.")
    return name


def _check_name_free(org: Organization, name: str, exclude: HashList | None = None) -> None:
    taken = HashList.objects.filter(organization=org, name__iexact=name, deleted_at__isnull=True)
    if exclude is not None:
        taken = taken.exclude(pk=exclude.pk)
    if taken.exists():
        raise ServiceError("name_taken", f"This organisation already has a list named “{name}”.")


@transaction.atomic
def list_create(
    *,
    org: Organization,
    name: str,
    category: str,
    description: str = "",
    actor: Actor,
    is_default: bool = False,
) -> HashList:
    """Create a self-managed list.

    Raises ServiceError ``invalid_name``, ``name_taken`` or ``invalid_category``.
    """
    name = _clean_name(name)
    if category not in HashList.Category.values:
        raise ServiceError("invalid_category", "The category must be “csam” or “se”.")
    if len(description) > MAX_NOTE:
        raise ServiceError(
            "description_too_long", f"A description takes at most {MAX_NOTE} characters."
        )
    _check_name_free(org, name)
    hash_list = HashList.objects.create(
        organization=org,
        name=name,
        category=category,
        description=description.strip(),
        is_default=is_default,
    )
    audit_list(
        actor=actor,
        action="list.created",
        hash_list=hash_list,
        metadata={"name": name, "category": category},
    )
    return hash_list


def lists_create_defaults(*, org: Organization, actor: Actor) -> list[HashList]:
    """Give an organisation its own CSAM and SE lists (idempotent)."""
    made = []
    for name, category, description in DEFAULT_LISTS:
        exists = HashList.objects.filter(
            organization=org, category=category, is_default=True, deleted_at__isnull=True
        ).exists()
        if not exists:
            made.append(
                list_create(
                    org=org,
                    name=name,
                    category=category,
                    description=description,
                    actor=actor,
                    is_default=True,
                )
            )
    return made


@transaction.atomic
def list_update(*, hash_list: HashList, name: str, description: str, actor: Actor) -> HashList:
    """Rename a list and/or change its description."""
    _check_writable(hash_list)
    name = _clean_name(name)
    if len(description) > MAX_NOTE:
        raise ServiceError(
            "description_too_long", f"A description takes at most {MAX_NOTE} characters."
        )
    if hash_list.organization is None:
        raise ServiceError("not_self_managed", "Only an organisation's own lists can be renamed.")
    _check_name_free(hash_list.organization, name, exclude=hash_list)
    changes: dict[str, list[str]] = {}
    if name != hash_list.name:
        changes["name"] = [hash_list.name, name]
    if description.strip() != hash_list.description:
        changes["description"] = [hash_list.description, description.strip()]
    hash_list.name = name
    hash_list.description = description.strip()
    hash_list.save(update_fields=["name", "description"])
    if changes:
        audit_list(
            actor=actor,
            action="list.updated",
            hash_list=hash_list,
            metadata=changes,
        )
    return hash_list


def list_rename(*, hash_list: HashList, name: str, actor: Actor) -> HashList:
    return list_update(
        hash_list=hash_list, name=name, description=hash_list.description, actor=actor
    )


@transaction.atomic
def list_delete(*, hash_list: HashList, reason: str, actor: Actor) -> int:
    """Delete a list; every live entry is tombstoned so deltas carry the removals. Returns how many.

    An organisation's own CSAM and SE lists cannot be deleted (``default_list``).
    """
    _check_writable(hash_list)
    if hash_list.is_default:
        raise ServiceError(
            "default_list", "An organisation's own CSAM and SE lists cannot be deleted."
        )
    removed = _tombstone(
        hash_list, _ALL_TARGETS, Provenance.of(actor), reason.strip() or "list deleted"
    )
    hash_list.deleted_at = timezone.now()
    hash_list.save(update_fields=["deleted_at"])
    list_deleted.send(sender=HashList, hash_list=hash_list)
    audit_list(
        actor=actor,
        action="list.deleted",
        hash_list=hash_list,
        metadata={"name": hash_list.name, "entries_removed": removed},
    )
    return removed


def list_export_record(*, hash_list: HashList, actor: Actor, export_format: str = "csv") -> None:
    """Audit an export of a list: a sensitive read (DESIGN.md, invariant 5)."""
    audit_list(
        actor=actor,
        action="list.exported",
        hash_list=hash_list,
        metadata={"name": hash_list.name, "format": export_format},
    )


# --- reconciling derived state ----------------------------------------------------------------

# Each list's stored live counts against its live entries, in one snapshot (a write changes
# both in one transaction, so any difference here is drift, never a write in flight).
_COUNTS_DRIFT_SQL = """
SELECT l.id, l.live_counts, COALESCE(c.counts, '{}'::jsonb)
  FROM lists_hashlist l
  LEFT JOIN (
      SELECT hash_list_id, jsonb_object_agg(signal_type, n) AS counts
        FROM (SELECT e.hash_list_id, h.signal_type, count(*) AS n
                FROM lists_entry e JOIN lists_hash h ON h.id = e.hash_id
               WHERE e.removed_seq IS NULL
                 AND (%(lists)s::bigint[] IS NULL OR e.hash_list_id = ANY(%(lists)s::bigint[]))
               GROUP BY e.hash_list_id, h.signal_type) AS per_type
       GROUP BY hash_list_id
  ) AS c ON c.hash_list_id = l.id
 WHERE l.live_counts <> COALESCE(c.counts, '{}'::jsonb)
   AND (%(lists)s::bigint[] IS NULL OR l.id = ANY(%(lists)s::bigint[]))
 ORDER BY l.id
"""


@dataclass(frozen=True)
class CountDrift:
    """A list whose stored live counts differ from its live entries."""

    list_pk: int
    public_id: str
    stored: dict[str, int]
    actual: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        return {"list": self.public_id, "stored": self.stored, "actual": self.actual}


def _counts(raw: Any) -> dict[str, int]:
    decoded = json.loads(raw) if isinstance(raw, str) else (raw or {})
    return {str(k): int(v) for k, v in decoded.items() if int(v)}


def _counts_drift(lists: list[int] | None) -> list[tuple[int, dict[str, int], dict[str, int]]]:
    with connection.cursor() as cursor:
        cursor.execute(_COUNTS_DRIFT_SQL, {"lists": lists})
        rows = cursor.fetchall()
    drift = []
    for pk, stored, actual in rows:
        stored_counts, actual_counts = _counts(stored), _counts(actual)
        if stored_counts != actual_counts:  # jsonb may differ in form only (zeros, 1 vs 1.0)
            drift.append((int(pk), stored_counts, actual_counts))
    return drift


def list_counts_reconcile(*, repair: bool) -> list[CountDrift]:
    """Compare every list's live counts with its live entries; with ``repair``, set them right.

    Returns the drift found (before any repair). A repair locks each drifted list's row, then
    counts again in a statement that starts after the lock is held, so a write that was in
    flight either committed first (and is counted) or waits and adds its own change afterwards.
    """
    found = _counts_drift(None)
    with scopes_disabled():
        ids = dict(
            HashList.objects.filter(pk__in=[pk for pk, _, _ in found]).values_list(
                "pk", "public_id"
            )
        )
    drift = [
        CountDrift(list_pk=pk, public_id=ids.get(pk, ""), stored=stored, actual=actual)
        for pk, stored, actual in found
    ]
    if repair:
        for item in drift:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(
                    "SELECT id FROM lists_hashlist WHERE id = %s FOR UPDATE", [item.list_pk]
                )
                for pk, _, actual in _counts_drift([item.list_pk]):
                    cursor.execute(
                        "UPDATE lists_hashlist SET live_counts = %s::jsonb WHERE id = %s",
                        [json.dumps(actual), pk],
                    )
    return drift
