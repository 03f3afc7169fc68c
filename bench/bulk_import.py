"""Bulk import: load N random hashes (default 1,000,000) into one list on PostgreSQL.

Prints hashes/s for a fresh load and for a re-load of the same file (all already present),
the time per chunk (median, p99) and peak memory. Run by `make bench`; asserts nothing.
"""

from __future__ import annotations

import os
import resource
import secrets
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hub.settings")

import django

django.setup()

from django.core.management import call_command
from django_scopes import scope

from hub.audit import Actor
from hub.models import Organization
from hub.services import organization_create
from lists.importing import ImportSummary, import_lines
from lists.models import HashList
from lists.selectors import entries_export_rows, entries_page, list_stats

N = int(os.environ.get("BENCH_N", "1000000"))


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


def timed(label: str, func: Callable[[], object], repeat: int = 20) -> None:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        samples.append(time.perf_counter() - start)
    samples.sort()
    print(
        f"  {label}: n={repeat} median={statistics.median(samples) * 1000:.1f} ms "
        f"p99={samples[-1] * 1000:.1f} ms"
    )


def reads(hash_list: HashList, lines: list[str]) -> None:
    """What a person's list page and an API client do against the loaded list."""
    hash_list.refresh_from_db()
    print(f"reads on a list of {sum(hash_list.live_counts.values()):,} live entries:")
    timed("list stats (counts by type, last change)", lambda: list_stats(lists=[hash_list]))
    timed("first page of 100", lambda: entries_page(hash_list=hash_list))
    cursor = ""
    for _ in range(100):
        cursor = entries_page(hash_list=hash_list, cursor=cursor).next_cursor or ""
    timed("page 101 by keyset cursor", lambda: entries_page(hash_list=hash_list, cursor=cursor))
    timed("label filter A1", lambda: entries_page(hash_list=hash_list, label="A1"))
    timed("label filter with no match", lambda: entries_page(hash_list=hash_list, label="nothing"))
    prefix = lines[500].split(",")[1][:6]
    timed(
        "hash prefix search (6 hex digits)",
        lambda: entries_page(hash_list=hash_list, prefix=prefix),
    )
    start = time.perf_counter()
    count = sum(1 for _ in entries_export_rows(hash_list=hash_list))
    elapsed = time.perf_counter() - start
    print(f"  CSV export rows: {count:,} in {elapsed:.1f} s = {count / elapsed:,.0f} rows/s")


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
        run(hash_list, lines, "fresh load")
        run(hash_list, lines, "re-load (idempotent)")
        reads(hash_list, lines)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"peak RSS of the importing process: {peak_mib:,.0f} MiB (includes the {N:,} input lines)"
    )


if __name__ == "__main__":
    main()
