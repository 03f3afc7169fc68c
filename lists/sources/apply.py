"""A planned page written in the runner's transaction: source records, entries, releases.

Records with an upstream key (NCMEC's member and entry id, a peer hub's list and hash) are
tracked in SourceRecord: a later record with the same key replaces the hashes it contributes,
a deletion by key removes them, and a hash leaves a list only when no record of that list still
holds it. Snapshot feeds key each row by its hash; when the last page of a snapshot is applied,
every record the snapshot did not name is removed the same way.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

from django.utils import timezone

from lists.changes import (
    HASH_ID_TARGETS,
    Provenance,
    entries_add_planned,
    entries_relabel,
    entries_tombstone,
    sql_rows,
)
from lists.models import HashList, ImportRun, Source, SourceRecord
from lists.sources.adapters.base import REMOVE
from lists.sources.pages import (
    PagePlan,
    PageResult,
    PreparedPage,
    planned_page,
)

# For the page's transaction only. The planner's guesses for array look-ups are high enough to
# start JIT compilation, tens of milliseconds a statement for look-ups that take one. And every
# statement of a page looks rows up by their keys through an index; while an import grows its
# tables faster than their statistics follow, the planner rates a scan of a whole table (the
# list's records, say) cheaper than a thousand index look-ups, so a page cost time in proportion
# to everything imported before it.
_PAGE_SETTINGS = "SELECT set_config('jit', 'off', true), set_config('enable_seqscan', 'off', true)"


def apply_prepared(
    source: Source, lists: Mapping[str, HashList], prepared: PreparedPage, run: ImportRun
) -> PageResult:
    page, result, plan = prepared.page, prepared.result, prepared.plan
    sql_rows(_PAGE_SETTINGS, {})
    if plan is None:
        plan = planned_page(prepared.wanted, {category: hl.pk for category, hl in lists.items()})
    old = _records(source, plan.keys) if plan.items else {}
    by_pk = {hl.pk: hl for hl in lists.values()}
    released: dict[int, set[int]] = defaultdict(set)  # list pk -> hash ids maybe to remove
    relabels: dict[int, dict[int, list[str]]] = defaultdict(dict)
    deletes: list[str] = []
    for key, item in plan.items.items():
        previous = old.get(key)
        if previous is None:
            continue
        released[previous.list_pk].update(previous.hash_ids)
        if item.op == REMOVE:
            deletes.append(key)
        elif (
            previous.list_pk != item.list_pk
            or sorted(previous.hash_ids) != item.hash_ids
            or previous.labels != item.labels
        ):
            result.updated += 1
            if previous.labels != item.labels:
                # Entries already live keep their row: their labels follow the update.
                relabels[item.list_pk].update(dict.fromkeys(item.hash_ids, item.labels))
    _records_write(source, plan, deletes, page.snapshot)
    who = Provenance(None, None, f"source {source.name} (run {run.public_id})"[:200])
    result.added += entries_add_planned(by_pk, plan.add_arrays, plan.add_rows, who)
    for list_pk, labels_by_hash in relabels.items():
        entries_relabel(by_pk[list_pk], labels_by_hash)
    for list_pk, maybe_gone in released.items():
        kept = plan.added.get(list_pk, frozenset())
        result.removed += _release(by_pk.get(list_pk), maybe_gone - kept, who)
    if page.snapshot and page.snapshot_complete:
        result.removed += _sweep(source, by_pk, page.snapshot, who)
    return result


@dataclass(frozen=True)
class _Held:
    list_pk: int
    hash_ids: list[int]
    labels: list[str]


def _records(source: Source, keys: str) -> dict[str, _Held]:
    """The records held under the keys (an array literal, see changes.quoted_array)."""
    # One look-up of the unique (source, key) index per key. With ``key = ANY(…)``, or a plain
    # join, the planner may read all the source's records instead (see _PAGE_SETTINGS); OFFSET 0
    # keeps the lateral subquery from being flattened into such a join.
    rows = sql_rows(
        "SELECT r.key, r.hash_list_id, r.hash_ids, r.labels"
        "  FROM unnest(%(keys)s::text[]) AS q(key)"
        "  JOIN LATERAL (SELECT * FROM lists_sourcerecord s"
        "                 WHERE s.source_id = %(source)s AND s.key = q.key OFFSET 0) AS r ON true",
        {"keys": keys, "source": source.pk},
    )
    return {
        key: _Held(list_pk, list(hash_ids), list(labels)) for key, list_pk, hash_ids, labels in rows
    }


def _records_write(source: Source, plan: PagePlan, deletes: list[str], snapshot: str) -> None:
    """Upsert and delete SourceRecords in one statement each (the arrays as literals)."""
    now = timezone.now()
    if deletes:
        sql_rows(
            "DELETE FROM lists_sourcerecord r USING unnest(%(keys)b::text[]) AS q(key)"
            " WHERE r.source_id = %(source)s AND r.key = q.key",
            {"source": source.pk, "keys": deletes},
        )
    if plan.upsert_arrays["keys"] != "{}":
        sql_rows(
            """
            INSERT INTO lists_sourcerecord
                   (source_id, key, hash_list_id, hash_ids, labels, snapshot, updated)
            SELECT %(source)s, q.key, q.list_id, q.ids::bigint[], q.labels::varchar[],
                   %(snapshot)s, %(now)s
              FROM unnest(%(keys)s::text[], %(lists)s::bigint[], %(ids)s::text[],
                          %(labels)s::text[]) AS q(key, list_id, ids, labels)
            ON CONFLICT (source_id, key) DO UPDATE
               SET hash_list_id = EXCLUDED.hash_list_id, hash_ids = EXCLUDED.hash_ids,
                   labels = EXCLUDED.labels, snapshot = EXCLUDED.snapshot,
                   updated = EXCLUDED.updated
            """,
            {"source": source.pk, "snapshot": snapshot, "now": now, **plan.upsert_arrays},
        )


def _still_held(hash_list: HashList, hash_ids: list[int]) -> set[int]:
    """Of ``hash_ids``, those some record of the list still holds (GIN look-ups, one per id).

    One look-up per id rather than one overlap with the whole array: the planner rates an
    overlap with hundreds of ids as matching most of the table (it has no statistics for ids
    that each occur once) and scans every record instead. A count, not EXISTS or LIMIT 1, so
    that it does not plan a scan that hopes to stop early; ``OFFSET 0`` keeps the list
    condition out of the GIN look-up, to be checked on the few records it finds.
    """
    rows = sql_rows(
        "SELECT id FROM ("
        "  SELECT q.id, (SELECT count(*)"
        "                  FROM (SELECT hash_list_id FROM lists_sourcerecord"
        "                         WHERE hash_ids @> ARRAY[q.id] OFFSET 0) AS r"
        "                 WHERE r.hash_list_id = %(list)s) AS n"
        "    FROM unnest(%(ids)b::bigint[]) AS q(id)"
        ") AS held WHERE n > 0",
        {"list": hash_list.pk, "ids": hash_ids},
    )
    return {held for (held,) in rows}


def _release(hash_list: HashList | None, hash_ids: set[int], who: Provenance) -> int:
    """Remove the hashes no record of the list holds any longer. Returns how many."""
    if hash_list is None or not hash_ids:
        return 0
    candidates = sorted(hash_ids)
    gone = sorted(set(candidates) - _still_held(hash_list, candidates))
    if not gone:
        return 0
    return entries_tombstone(hash_list, HASH_ID_TARGETS, who, "removed upstream", {"ids": gone})


def _sweep(source: Source, by_pk: Mapping[int, HashList], snapshot: str, who: Provenance) -> int:
    """After a complete snapshot: drop the records it did not name, and their hashes."""
    stale = SourceRecord.objects.filter(source=source).exclude(snapshot=snapshot)
    released: dict[int, set[int]] = defaultdict(set)
    for list_pk, hash_ids in stale.values_list("hash_list_id", "hash_ids"):
        released[list_pk].update(hash_ids)
    stale.delete()
    return sum(_release(by_pk.get(pk), ids, who) for pk, ids in released.items())
