"""An upstream page read for applying: its records parsed and checked, its hashes given their
ids in the merged set, and what it writes planned down to the arrays of the statements.

The runner does this in order inside a caller's transaction; in a worker the helper process
(lists.sources.helper) does it one page ahead, on its own connection.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import NamedTuple

from hub.errors import ServiceError
from hub.lib.ids import new_ordered_public_ids
from lists.changes import HASH_IDS_READ, HASH_IDS_UPSERT, quoted_array, sql_rows
from lists.hashtypes import HashParseError, SignalType, get_signal_type
from lists.models import HashList, Source
from lists.services import normalise_labels
from lists.sources.adapters.base import ADD, REMOVE, Page, Record


@dataclass
class PageResult:
    seen: int = 0
    added: int = 0
    updated: int = 0
    removed: int = 0
    errors: list[tuple[str, str, str]] = field(default_factory=list)


@dataclass
class _Wanted:
    """One record, parsed: the list it goes to and its canonical hashes."""

    key: str
    op: str
    category: str
    labels: list[str]
    hashes: list[tuple[str, bytes]]


_CATEGORIES = frozenset(HashList.Category.values)


@lru_cache(maxsize=64)
def _signal_type(name: str) -> SignalType:
    """The signal type an upstream names, looked up once per name (not once per hash)."""
    return get_signal_type(name.strip().lower())


@lru_cache(maxsize=1024)
def _labels(raw: tuple[str, ...]) -> list[str]:
    """normalise_labels, once per distinct label set (upstreams repeat a handful of them)."""
    return normalise_labels(raw)


def _parse(source: Source, record: Record, result: PageResult) -> list[_Wanted]:
    category = record.category or source.default_category
    if category not in _CATEGORIES:
        result.errors.append(
            (record.position, "invalid_category", f"Unknown category {category!r}.")
        )
        return []
    if record.op not in (ADD, REMOVE):
        result.errors.append((record.position, "invalid_op", f"Unknown operation {record.op!r}."))
        return []
    try:
        # A copy: _Wanted's labels must not alias the cached list.
        labels = list(_labels(tuple(record.labels)))
    except ServiceError as error:
        result.errors.append((record.position, error.code, error.message))
        labels = []
    except TypeError:  # an unhashable label: let normalise_labels say what is wrong with it
        try:
            labels = normalise_labels(record.labels)
        except ServiceError as error:
            result.errors.append((record.position, error.code, error.message))
            labels = []
    hashes: list[tuple[str, bytes]] = []
    for signal_name, text in record.hashes:
        try:
            signal_type = _signal_type(signal_name)
            value = signal_type.parse(text)
            if record.op == ADD:  # a removal may still name a value no longer allowed in
                signal_type.check_addable(value)
            hashes.append((signal_type.name, value))
        except HashParseError as error:
            result.errors.append((record.position, error.code, f"{signal_name}: {error.message}"))
        except ServiceError as error:
            result.errors.append((record.position, error.code, error.message))
    if record.key:
        if record.op == ADD and not hashes:
            if not record.hashes:
                result.errors.append(
                    (record.position, "no_hashes", "The record carries no hash to add.")
                )
            return []
        return [_Wanted(record.key, record.op, category, labels, hashes)]
    # Unkeyed: each hash stands alone, keyed by itself (and its list) so that a snapshot can
    # tell which rows it named, and a removal releases exactly that hash.
    return [
        _Wanted(f"{category}:{name}:{value.hex()}", record.op, category, labels, [(name, value)])
        for name, value in hashes
    ]


def _hash_ids(
    pairs: Iterable[tuple[str, bytes]],
) -> tuple[dict[tuple[str, bytes], int], frozenset[int]]:
    """Ids of the given hashes in the merged set, inserting the new ones; and the ids of those
    it inserted (hashes no entry of any list can hold yet)."""
    # Sorted, so that two runs inserting the same new hashes take their locks in one order.
    wanted = sorted(set(pairs))
    if not wanted:
        return {}, frozenset()
    rows = sql_rows(
        HASH_IDS_UPSERT, {"types": [t for t, _ in wanted], "values": [v for _, v in wanted]}
    )
    ids = {wanted[n - 1]: pk for n, pk, _ in rows}
    made = frozenset(pk for _, pk, inserted in rows if inserted)
    if len(ids) < len(wanted):
        # Committed by another transaction after this statement's snapshot was taken.
        missing = [pair for pair in wanted if pair not in ids]
        rows = sql_rows(
            HASH_IDS_READ, {"types": [t for t, _ in missing], "values": [v for _, v in missing]}
        )
        ids.update((missing[n - 1], pk) for n, pk in rows)
    return ids, made


@dataclass
class PreparedPage:
    """A page parsed, and (when prepared ahead) planned: then the plan replaces the records."""

    page: Page
    result: PageResult
    wanted: dict[str, _Wanted]
    plan: PagePlan | None = None  # made ahead, with the hashes' ids


class _Item(NamedTuple):
    """A record as the runner compares it with what its key held before (a tuple: a page
    makes a thousand of them, in the helper process that is the import's busiest)."""

    op: str
    list_pk: int
    hash_ids: list[int]  # sorted
    labels: list[str]


@dataclass
class PagePlan:
    """What a page writes whatever the source's records held before: worked out with the hashes'
    ids, by the helper process while the runner applies the page before, down to the arrays of
    the statements, so that the runner only compares records and writes."""

    items: dict[str, _Item]
    keys: str  # every key, as an array literal (for the records look-up)
    added: dict[int, frozenset[int]]  # list pk -> the hash ids the page adds there
    add_rows: int
    add_arrays: dict[str, str]  # _ADD_ENTRIES's arrays
    upsert_arrays: dict[str, str]  # the records upsert's arrays


def _plan(
    wanted: Mapping[str, _Wanted],
    list_pks: Mapping[str, int],
    ids: Mapping[tuple[str, bytes], int],
    made: frozenset[int],
) -> PagePlan:
    items: dict[str, _Item] = {}
    # Each distinct label set is numbered, and written once as an element of a text array
    # (upstreams repeat a handful of them); the id arrays need no quoting inside one.
    label_sets: dict[tuple[str, ...], int] = {}
    elements: list[str] = []
    adds: dict[int, dict[int, tuple[str, int]]] = defaultdict(dict)  # list -> hash -> type, set
    upsert_keys: list[str] = []
    upsert_lists: list[int] = []
    upsert_ids: list[str] = []
    upsert_labels: list[str] = []
    for key, item in wanted.items():
        list_pk = list_pks[item.category]
        if item.op == REMOVE:
            items[key] = _Item(item.op, list_pk, [], item.labels)
            continue
        labels = tuple(item.labels)
        number = label_sets.get(labels)
        if number is None:
            number = label_sets[labels] = len(label_sets) + 1
            elements.append(quoted_array([quoted_array(labels)])[1:-1])
        by_hash = adds[list_pk]
        for pair in item.hashes:
            by_hash[ids[pair]] = (pair[0], number)  # a later record's labels win
        hash_ids = sorted({ids[pair] for pair in item.hashes})
        items[key] = _Item(item.op, list_pk, hash_ids, item.labels)
        upsert_keys.append(key)
        upsert_lists.append(list_pk)
        upsert_ids.append('"{' + ",".join(map(str, hash_ids)) + '}"')
        upsert_labels.append(elements[number - 1])
    # The new entries in list, then hash order (the order of their change numbers).
    lists_column: list[int] = []
    ids_column: list[int] = []
    types_column: list[str] = []
    sets_column: list[int] = []
    for list_pk in sorted(adds):
        by_hash = adds[list_pk]
        ordered = sorted(by_hash)
        lists_column += [list_pk] * len(ordered)
        ids_column += ordered
        for hash_id in ordered:
            signal_type, number = by_hash[hash_id]
            types_column.append(signal_type)
            sets_column.append(number)
    return PagePlan(
        items=items,
        keys=quoted_array(wanted),
        added={list_pk: frozenset(by_hash) for list_pk, by_hash in adds.items()},
        add_rows=len(ids_column),
        add_arrays={
            "label_sets": "{" + ",".join(elements) + "}",
            "lists": _literal(lists_column),
            "ids": _literal(ids_column),
            "types": _literal(types_column),
            "label_set_of": _literal(sets_column),
            "public_ids": _literal(new_ordered_public_ids(len(ids_column))),
            "check": "{" + ",".join(["f" if i in made else "t" for i in ids_column]) + "}",
        },
        upsert_arrays={
            "keys": quoted_array(upsert_keys),
            "lists": _literal(upsert_lists),
            "ids": "{" + ",".join(upsert_ids) + "}",
            "labels": "{" + ",".join(upsert_labels) + "}",
        },
    )


def page_prepare(
    source: Source, page: Page, list_pks: Mapping[str, int] | None = None
) -> PreparedPage:
    """The page parsed; with ``list_pks`` (ahead of the runner), its hashes upserted and its
    plan made too, and the parsed records then dropped (the plan is what the runner needs)."""
    result = PageResult(errors=[(e.position, e.code, e.message) for e in page.errors])
    result.seen = len(page.records)
    wanted: dict[str, _Wanted] = {}
    for record in page.records:
        for item in _parse(source, record, result):
            wanted[item.key] = item  # a later record with the same key wins
    prepared = PreparedPage(page, result, wanted)
    if list_pks is not None:
        prepared.plan = planned_page(wanted, list_pks)
        prepared.wanted = {}
    return prepared


def planned_page(wanted: Mapping[str, _Wanted], list_pks: Mapping[str, int]) -> PagePlan:
    """The page's plan, its hashes added to the merged set first."""
    ids, made = _hash_ids(pair for item in wanted.values() for pair in item.hashes)
    return _plan(wanted, list_pks, ids, made)


def _literal(values: Iterable[object]) -> str:
    """A PostgreSQL array literal of values that need no quoting (numbers, ids, type names)."""
    return "{" + ",".join(map(str, values)) + "}"
