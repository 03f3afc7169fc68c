"""The list page's queries keep their plan whatever the planner's statistics say.

Right after a bulk upload, before autovacuum's next ANALYZE, the statistics knew nothing of the
new entries: the planner read the partial unique index (hash, list) from end to end and sorted
the whole list for every page (0.2 to 1.4 s a page at 300,000 entries; bench/bulk_import.py
prints the figures). These tests load a list through the bulk path, put the statistics in each
state a hub meets (never taken, taken before the load, taken after it) and read, with EXPLAIN,
the plan of every statement entries_page and the export run, under the settings they run with:
the list's entries are walked by its own index (no sort, no sequential or bitmap scan), or
reached through the label's or the hashes' index for a filter few entries pass. Nothing here is
timed.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from django.db import connection

from hub.audit import Actor
from lists import selectors
from lists.importing import import_lines
from lists.models import Entry, Hash, HashList
from lists.selectors import entries_export_rows, entries_page
from lists.services import EntryInput, entry_remove

pytestmark = pytest.mark.django_db

ACTOR = Actor(system="plan test")
ENTRY, HASH = Entry._meta.db_table, Hash._meta.db_table
LOADED = 3000
RARE = "rare"  # The label of the 3 oldest entries only.


@dataclass
class Plan:
    sql: str
    root: dict[str, Any]

    def nodes(self) -> Iterator[dict[str, Any]]:
        stack = [self.root]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(node.get("Plans", []))

    def node_types(self) -> set[str]:
        return {node["Node Type"] for node in self.nodes()}

    def indexes(self) -> set[str]:
        return {node["Index Name"] for node in self.nodes() if "Index Name" in node}

    def reads_a_whole_table(self) -> bool:
        return any(
            node["Node Type"] == "Seq Scan" and node["Relation Name"] in (ENTRY, HASH)
            for node in self.nodes()
        )

    def loads_by_primary_key(self) -> bool:
        """Entries and their hashes by primary key, with nested loops: the page's second step."""
        joins = {"Hash Join", "Merge Join"}
        return self.indexes() == {"lists_entry_pkey", "lists_hash_pkey"} and not (
            self.node_types() & joins or self.reads_a_whole_table()
        )

    def walks(self, index: str) -> bool:
        """A backward index scan that stops at the LIMIT: no sort, bitmap or hash to build."""
        walked = any(
            node["Node Type"] == "Index Scan"
            and node["Index Name"] == index
            and node["Scan Direction"] == "Backward"
            for node in self.nodes()
        )
        unordered = {"Sort", "Incremental Sort", "Bitmap Heap Scan", "Hash Join", "Merge Join"}
        return walked and not self.node_types() & unordered


@contextmanager
def plans() -> Iterator[list[Plan]]:
    """The plan of each statement that reads entries, EXPLAINed just before it runs."""
    seen: list[Plan] = []

    def explain(
        execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any
    ) -> Any:
        if sql.lstrip().startswith("SELECT") and ENTRY in sql:
            cursor = context["cursor"]
            cursor.execute("EXPLAIN (FORMAT JSON) " + sql, params)
            seen.append(Plan(sql, cursor.fetchone()[0][0]["Plan"]))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(explain):
        yield seen


def analyze() -> None:
    with connection.cursor() as cursor:
        for table in (ENTRY, HASH):
            cursor.execute(f"ANALYZE {connection.ops.quote_name(table)}")


def forget_statistics() -> None:
    """The tables as autovacuum leaves them until its first ANALYZE (rolled back with the test)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        if not cursor.fetchone()[0]:
            pytest.skip("clearing the planner's statistics needs a superuser")
        tables = [ENTRY, HASH]
        cursor.execute("DELETE FROM pg_statistic WHERE starelid = ANY(%s::regclass[])", [tables])
        cursor.execute(
            "UPDATE pg_class SET reltuples = -1, relpages = 0 WHERE oid = ANY(%s::regclass[]) "
            "OR oid IN (SELECT indexrelid FROM pg_index WHERE indrelid = ANY(%s::regclass[]))",
            [tables, tables],
        )


def load(hash_list: HashList, lines: list[str]) -> None:
    import_lines(hash_list=hash_list, lines=lines, default_type="", actor=ACTOR, label="bulk")


def line(i: int) -> str:
    """Mostly PDQ, a fifth labelled A1, some MD5; the first three carry the rare label."""
    labels = "A1" if i % 5 == 0 else ""
    if i < 3:
        labels += f";{RARE}"
    if i % 4 == 0:
        return f"md5,{secrets.token_hex(16)},{labels}"
    return f"pdq,{secrets.token_hex(32)},{labels}"


STATES = ("never analyzed", "analyzed before the load", "analyzed after the load")


@pytest.fixture(params=STATES)
def statistics(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def loaded(statistics: str, csam_a: HashList, se_a: HashList) -> HashList:
    """A list of LOADED entries from the bulk path, the planner's statistics as ``statistics``."""
    # Another list first, so that statistics taken before the load know the table, not the list.
    load(se_a, [f"md5,{secrets.token_hex(16)}" for _ in range(200)])
    if statistics == "analyzed before the load":
        analyze()
    load(csam_a, [line(i) for i in range(LOADED)])
    if statistics == "never analyzed":
        forget_statistics()
    elif statistics == "analyzed after the load":
        analyze()
    return csam_a


def newest_value(hash_list: HashList, offset: int = 0) -> str:
    entry = Entry.objects.filter(hash_list=hash_list).select_related("hash").order_by("-added_seq")
    return bytes(entry[offset].hash.value).hex()


WALKED: dict[str, dict[str, Any]] = {
    "first page": {},
    "type filter": {"signal_type": "md5"},
    "label filter": {"label": "A1"},
    "one-digit prefix": {"prefix": "a"},
}


@pytest.mark.parametrize("filters", WALKED.values(), ids=WALKED.keys())
def test_a_page_walks_the_lists_own_index_whatever_the_statistics(
    loaded: HashList, filters: dict[str, Any]
) -> None:
    first = entries_page(hash_list=loaded, **filters)
    assert first.next_cursor is not None
    with plans() as first_plans:
        entries_page(hash_list=loaded, **filters)
    with plans() as next_plans:
        entries_page(hash_list=loaded, cursor=first.next_cursor, **filters)
    for found, load_them in (first_plans, next_plans):
        assert found.walks("entry_by_list_seq"), found.root
        assert load_them.loads_by_primary_key()


def test_the_export_walks_the_lists_own_index_whatever_the_statistics(
    loaded: HashList, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(selectors, "EXPORT_PAGE", 1000)
    with plans() as seen:
        rows = list(entries_export_rows(hash_list=loaded))
    assert len(rows) == LOADED and len(seen) == 4
    assert all(plan.walks("entry_by_list_seq") for plan in seen), seen[0].root


def test_a_rare_label_is_found_through_its_index_after_a_short_walk(
    loaded: HashList, statistics: str
) -> None:
    with plans() as seen:
        page = entries_page(hash_list=loaded, label=RARE)
    assert [RARE in entry.labels for entry in page.entries] == [True] * 3
    walk, edge, by_label, load_them = seen
    assert walk.walks("entry_by_list_seq") and edge.walks("entry_by_list_seq")
    assert load_them.loads_by_primary_key()
    assert by_label.node_types() >= {"Bitmap Heap Scan", "Sort"}
    if statistics != "never analyzed":
        # Never analyzed, the planner may read all live entries through the unique index, as
        # partial as the label's (see lists.selectors): the one choice no setting takes from it.
        assert by_label.indexes() == {"entry_live_labels_gin"}
    assert not any(plan.reads_a_whole_table() for plan in seen)


def test_a_longer_prefix_starts_from_the_hashes_whatever_the_statistics(loaded: HashList) -> None:
    value = newest_value(loaded, offset=10)
    with plans() as seen:
        page = entries_page(hash_list=loaded, prefix=value[:6])
    assert value in [bytes(entry.hash.value).hex() for entry in page.entries]
    by_hash, load_them = seen
    assert by_hash.indexes() == {"one_row_per_hash", "one_live_entry_per_hash_and_list"}
    assert load_them.loads_by_primary_key()
    assert not any(plan.reads_a_whole_table() for plan in seen)


# --- what the fixed plans find ------------------------------------------------------------------


def values(page: selectors.EntryPage) -> list[str]:
    return [bytes(entry.hash.value).hex() for entry in page.entries]


def every_page(hash_list: HashList, **filters: Any) -> list[list[str]]:
    pages, cursor = [], ""
    while True:
        page = entries_page(hash_list=hash_list, cursor=cursor, limit=2, **filters)
        pages.append(values(page))
        if page.next_cursor is None:
            return pages
        cursor = page.next_cursor


def test_a_rare_label_pages_on_from_the_walk_into_its_index(
    csam_a: HashList, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Pages of 2 walk 3 entries each (a page and one to know there is a next) before the index.
    monkeypatch.setattr(selectors, "LABEL_WALK", 1)
    tags = {0: "x", 1: "x", 7: "x", 11: "x", 12: "x"}
    lines = [f"md5,{secrets.token_hex(16)},{tags.get(i, '')}" for i in range(14)]
    load(csam_a, lines)
    tagged = [line.split(",")[1] for line in reversed(lines) if line.endswith(",x")]
    assert every_page(csam_a, label="x") == [tagged[0:2], tagged[2:4], tagged[4:]]


def test_a_longer_prefix_pages_newest_first_over_live_entries_of_this_list_only(
    csam_a: HashList, se_a: HashList
) -> None:
    ours = [f"abcd{secrets.token_hex(30)}" for _ in range(4)] + [f"abcd{secrets.token_hex(14)}"]
    load(csam_a, [f"pdq,{v}" for v in ours[:4]] + [f"md5,{ours[4]}", f"pdq,{'ab' * 32}"])
    load(se_a, [f"pdq,abcd{secrets.token_hex(30)}"])
    entry_remove(hash_list=csam_a, items=[EntryInput("pdq", ours[1])], reason="t", actor=ACTOR)
    live = [ours[4], ours[3], ours[2], ours[0]]
    assert every_page(csam_a, prefix="ABCD") == [live[0:2], live[2:4]]
    assert every_page(csam_a, prefix="abcd", signal_type="pdq") == [live[1:3], live[3:]]
    assert every_page(csam_a, prefix="abcd", signal_type="sha1") == [[]]
