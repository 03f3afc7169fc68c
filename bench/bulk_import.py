"""Bulk import: load N random hashes (default 1,000,000) into one list on PostgreSQL.

Prints hashes/s for a fresh load and for a re-load of the same file (all already present),
the time per chunk (median, p99) and peak memory. Then the list page's reads right after the
load, before anything has refreshed the planner's statistics (the moment a bulk upload used to
make the first page take 0.6 s at 300,000 entries): the first page and page 101 by cursor, with
no filter and with each filter the page offers (type, label, hash prefix): samples, median and
p99 of each; beside them, as a baseline from the same run, the same pages after an explicit
ANALYZE. Then the CSV export's rate, at both moments. Run by `make bench`; asserts nothing.

``BENCH_N`` sets N. ``BENCH_AUTOVACUUM=1`` leaves autovacuum alone during the load; by default
the bench holds it off for the entry and hash tables (and puts their settings back at the end),
so that the first column is always measured on the statistics of before the load, not on those
of an ANALYZE autovacuum may or may not have slipped in (it wakes once a minute).
``BENCH_READ_SECONDS`` (default 2) is the time spent sampling each page (at most 500 samples).
"""

from __future__ import annotations

import os
import resource
import secrets
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import TypedDict

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hub.settings")

import django

django.setup()

from django.core.management import call_command
from django.db import connection
from django.db.models import Q
from django_scopes import scope

from hub.audit import Actor
from hub.models import Organization
from hub.services import organization_create
from lists.importing import ImportSummary, import_lines
from lists.models import Entry, Hash, HashList
from lists.selectors import (
    PAGE_SIZE,
    encode_cursor,
    entries_export_rows,
    entries_page,
    hex_prefix_range,
    list_stats,
)

N = int(os.environ.get("BENCH_N", "1000000"))
HOLD_AUTOVACUUM = os.environ.get("BENCH_AUTOVACUUM", "0") != "1"
READ_SECONDS = float(os.environ.get("BENCH_READ_SECONDS", "2"))
MAX_SAMPLES = 500
TABLES = (Entry._meta.db_table, Hash._meta.db_table)


def run(hash_list: HashList, lines: list[str], label: str) -> None:
    chunk_times: list[float] = []
    last = [time.perf_counter()]

    def progress(summary: ImportSummary) -> None:
        now = time.perf_counter()
        chunk_times.append(now - last[0])
        last[0] = now

    start = time.perf_counter()
    summary = import_lines(
        hash_list=hash_list,
        lines=lines,
        default_type="",
        actor=Actor(system="bench"),
        label="bench",
        progress=progress,
    )
    elapsed = time.perf_counter() - start
    chunk_times = chunk_times[:-1] or chunk_times  # the last call is the final summary, not a chunk
    chunk_times.sort()
    print(
        f"{label}: N={summary.lines:,} added={summary.added:,} "
        f"already_present={summary.already_present:,} "
        f"in {elapsed:.1f} s = {summary.lines / elapsed:,.0f} hashes/s; "
        f"per 50k chunk median={statistics.median(chunk_times):.2f} s "
        f"p99={chunk_times[max(0, int(len(chunk_times) * 0.99) - 1)]:.2f} s"
    )


def sample(func: Callable[[], object]) -> str:
    """Call ``func`` for READ_SECONDS (at least 5, at most MAX_SAMPLES times): n, median, p99."""
    samples: list[float] = []
    deadline = time.perf_counter() + READ_SECONDS
    while len(samples) < MAX_SAMPLES and (len(samples) < 5 or time.perf_counter() < deadline):
        start = time.perf_counter()
        func()
        samples.append(time.perf_counter() - start)
    samples.sort()
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    return (
        f"n={len(samples):<3} median={statistics.median(samples) * 1000:7.1f} ms "
        f"p99={p99 * 1000:7.1f} ms"
    )


def timed(label: str, func: Callable[[], object]) -> None:
    print(f"  {label}: {sample(func)}")


# The list page's filters as the page passes them to entries_page, and the same filter as a plain
# queryset, which finds page 101's cursor in one query rather than by 100 page loads.
class Filters(TypedDict, total=False):
    signal_type: str
    label: str
    prefix: str


def filter_q(filters: Filters) -> Q:
    condition = Q()
    if filters.get("signal_type"):
        condition &= Q(hash__signal_type=filters["signal_type"])
    if filters.get("label"):
        condition &= Q(labels__contains=[filters["label"]])
    if filters.get("prefix"):
        low, high = hex_prefix_range(filters["prefix"])
        condition &= Q(hash__value__gte=low)
        if high is not None:
            condition &= Q(hash__value__lt=high)
    return condition


def page_101_cursor(hash_list: HashList, filters: Filters) -> str | None:
    """The cursor that the 100th page's "next" link carries; None when there is no page 101."""
    seqs = (
        Entry.objects.filter(hash_list=hash_list, removed_seq__isnull=True)
        .filter(filter_q(filters))
        .order_by("-added_seq")
        .values_list("added_seq", flat=True)
    )
    found = list(seqs[100 * PAGE_SIZE - 1 : 100 * PAGE_SIZE + 1])
    return encode_cursor(found[0]) if len(found) == 2 else None


def statistics_state() -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT coalesce(greatest(last_analyze, last_autoanalyze)::text, 'never'), "
            "n_mod_since_analyze FROM pg_stat_user_tables WHERE relname = %s",
            [Entry._meta.db_table],
        )
        row = cursor.fetchone() or ("unknown", 0)
    return f"entry table last analyzed: {row[0]}, rows changed since: {row[1]:,}"


def export_rate(hash_list: HashList) -> str:
    start = time.perf_counter()
    count = sum(1 for _ in entries_export_rows(hash_list=hash_list))
    elapsed = time.perf_counter() - start
    return f"{count:,} rows in {elapsed:.1f} s = {count / elapsed:,.0f} rows/s"


def list_page_reads(hash_list: HashList, lines: list[str]) -> None:
    """The list page's first page and page 101 for each filter, then again after ANALYZE."""
    prefix = lines[500].split(",")[1][:6]
    cases: list[tuple[str, Filters]] = [
        ("no filter", {}),
        ("type md5", {"signal_type": "md5"}),
        ("label A1", {"label": "A1"}),
        ("label with no match", {"label": "nothing"}),
        ("hash prefix (6 hex digits)", {"prefix": prefix}),
        ("hash prefix (1 hex digit)", {"prefix": prefix[:1]}),
    ]
    cursors = {label: page_101_cursor(hash_list, filters) for label, filters in cases}
    pages: dict[str, Callable[[], object]] = {}
    for label, filters in cases:
        pages[f"{label}: first page"] = partial(entries_page, hash_list=hash_list, **filters)
        if (page_101 := cursors[label]) is not None:
            pages[f"{label}: page 101"] = partial(
                entries_page, hash_list=hash_list, cursor=page_101, **filters
            )
    print(f"list page reads, N={N:,} entries, pages of {PAGE_SIZE}, right after the load")
    print(f"  ({statistics_state()})")
    stale = {label: sample(page) for label, page in pages.items()}
    stale_export = export_rate(hash_list)
    start = time.perf_counter()
    with connection.cursor() as cursor:
        for table in TABLES:
            cursor.execute(f"ANALYZE {connection.ops.quote_name(table)}")
    analyzed = time.perf_counter() - start
    print(f"  baseline: the same reads after an explicit ANALYZE of both tables ({analyzed:.2f} s)")
    print(f"  {'page':<40} {'right after the load':<42} after ANALYZE")
    for label, page in pages.items():
        print(f"  {label:<40} {stale[label]:<42} {sample(page)}")
    print(
        f"  CSV export: right after the load {stale_export}; after ANALYZE {export_rate(hash_list)}"
    )


def reads(hash_list: HashList) -> None:
    """Reads that do not depend on the planner's statistics."""
    hash_list.refresh_from_db()
    print(f"other reads on a list of {sum(hash_list.live_counts.values()):,} live entries:")
    timed("list stats (counts by type, last change)", lambda: list_stats(lists=[hash_list]))


@contextmanager
def autovacuum_held_off() -> Iterator[None]:
    if not HOLD_AUTOVACUUM:
        yield
        return
    quoted = [connection.ops.quote_name(table) for table in TABLES]
    with connection.cursor() as cursor:
        for table in quoted:
            cursor.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            for table in quoted:
                cursor.execute(f"ALTER TABLE {table} RESET (autovacuum_enabled)")


def main() -> None:
    call_command("migrate", verbosity=0)
    actor = Actor(system="bench")
    org = Organization.objects.filter(slug="bench-import").first() or organization_create(
        name="Bench import", slug="bench-import", owner=None, actor=actor, approved=True
    )
    with scope(organization=org.pk):
        hash_list = HashList.objects.get(organization=org, category="csam", is_default=True)
        # A realistic mix: mostly PDQ, some MD5, with labels on a fifth of the lines.
        lines = [
            f"pdq,{secrets.token_hex(32)},A1" if i % 5 == 0 else
            f"md5,{secrets.token_hex(16)}" if i % 4 == 0 else
            f"pdq,{secrets.token_hex(32)}"
            for i in range(N)
        ]  # fmt: skip
        with autovacuum_held_off():
            run(hash_list, lines, "fresh load")
            list_page_reads(hash_list, lines)
        run(hash_list, lines, "re-load (idempotent)")
        reads(hash_list)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"peak RSS of the importing process: {peak_mib:,.0f} MiB (includes the {N:,} input lines)"
    )


if __name__ == "__main__":
    main()
