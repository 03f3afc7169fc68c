"""Report listings: the "now in <source>" loop over a verified source's import of N entries.

What it measures: ``reports.listings.listings_run`` (the body of the Celery task beat calls every
minute) reading N entries (default 1,000,000) that entered one verified source's CSAM list, with
R reported hashes (R = 0, 1,000 and 50,000; a fifth of them, ``BENCH_LISTED_FRACTION``, are
among the N, so R/5 listings are made). Each R starts from the same cursor over the same N
entries; a run stops taking batches after 50 s as in production, so the loop calls it again (as
beat would a minute later) until the cursor reaches the end. Printed per R: wall time, runs,
per-entry cost, ReportListing rows made, SQL statements, the time per 2,000-entry batch spent
beyond the feed (``_entered_process``: median, p99), the process's peak RSS during the pass.

The baseline, side by side in the same run: reading the same feed alone
(``lists.changes.entries_entered_since`` over the same range, 2,000 at a time, each batch in its
own transaction, as the loop reads it); what the loop costs beyond it is what reports adds.

Then ``listing_lag(org)`` for an organisation with 10,000 filed reports whose hashes five sources
listed (1 to 5 sources each, about 30,000 listings): median and p99 of 20 calls, beside the
baseline of reading the same listing rows alone (one query, no aggregation).

Reports are made straight in the database (two own-list entries per report, ten organisations,
every one entitled to the source); no organisation has a webhook endpoint (the common case).
Meant for the throwaway database of `make bench`; it puts the listing cursor back at the end:

    .venv/bin/python -m hub.embedded test -- .venv/bin/python bench/report_listings.py

``BENCH_N`` sets N; ``BENCH_LISTED_FRACTION`` the fraction of reported hashes among the N.
Prints figures, asserts nothing.
"""

from __future__ import annotations

import os
import random
import re
import resource
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hub.settings")

import django

django.setup()

from django.core.management import call_command
from django.db import connection, transaction
from django_scopes import scopes_disabled

from hub.audit import Actor
from hub.models import Organization
from hub.services import organization_create
from lists import changes
from lists.models import Entry, HashList, Source
from lists.sources.services import source_create, source_lists
from reports import listings
from reports.models import ListingCursor, Report, ReportedEntry, ReportListing

N = int(os.environ.get("BENCH_N", "1000000"))
FRACTION = float(os.environ.get("BENCH_LISTED_FRACTION", "0.2"))
R_VALUES = (0, 1_000, 50_000)
POOL = max(R_VALUES)
ORGS = 10
CHUNK = 50_000  # entries per import transaction (as lists.importing's chunks)
LAG_REPORTS = 10_000
LAG_SOURCES = 5
LAG_CALLS = 20
ACTOR = Actor(system="bench")
NOW = datetime.now(UTC)
RNG = random.Random(21)
WHO = changes.Provenance(user_id=None, key_id=None, label="bench")


# --- measuring -----------------------------------------------------------------------------------


def rss_peak_reset() -> bool:
    """Reset the kernel's peak-RSS mark of this process (Linux); False where not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def rss_peak_mib() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Queries:
    """Counts the SQL statements this connection runs, and their time by kind."""

    def __init__(self) -> None:
        self.count = 0
        self.kinds: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])

    def __call__(self, execute: Callable[..., Any], sql: str, *args: Any) -> Any:
        began = time.perf_counter()
        try:
            return execute(sql, *args)
        finally:
            self.count += 1
            kind = self.kinds[statement_kind(sql)]
            kind[0] += 1
            kind[1] += time.perf_counter() - began

    def top(self, n: int) -> str:
        ranked = sorted(self.kinds.items(), key=lambda item: -item[1][1])[:n]
        return "; ".join(
            f"{kind} {count:,.0f}x {seconds:.1f} s" for kind, (count, seconds) in ranked
        )


def statement_kind(sql: str) -> str:
    if "came AS" in sql:
        return "feed read"
    verb = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else "?"
    table = re.search(r'(?:FROM|INTO|UPDATE)\s+"?(\w+)"?', sql)
    return f"{verb} {table.group(1)}" if table else verb


@contextmanager
def measured() -> Iterator[tuple[dict[str, float], Queries]]:
    """Wall time, SQL statements and peak RSS (MiB) of the block, in the yielded dict."""
    figures: dict[str, float] = {}
    counter = Queries()
    rss_peak_reset()
    rss_before = rss_peak_mib()
    started = time.perf_counter()
    with connection.execute_wrapper(counter):
        yield figures, counter
    figures["wall"] = time.perf_counter() - started
    figures["queries"] = counter.count
    figures["rss"] = rss_peak_mib()
    figures["rss_growth"] = figures["rss"] - rss_before


def quantile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] if ordered else 0.0


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


# --- the data ------------------------------------------------------------------------------------


def pdq() -> bytes:
    return RNG.randbytes(32)


def is_listed(i: int) -> bool:
    """Whether reported hash ``i`` is among the source's N: a steady FRACTION of any prefix."""
    return int((i + 1) * FRACTION) > int(i * FRACTION)


def add(hash_list: HashList, values: Sequence[bytes]) -> None:
    """Add ``values`` as PDQ entries of ``hash_list`` by the bulk path, CHUNK per transaction."""
    for low in range(0, len(values), CHUNK):
        rows = [
            changes.ParsedEntry(index=i, signal_type="pdq", value=value, labels=[], note="")
            for i, value in enumerate(values[low : low + CHUNK], start=low)
        ]
        with transaction.atomic():
            changes.entries_add(hash_list, rows, WHO)


def own_list(org: Organization) -> HashList:
    return HashList.objects.get(organization=org, category="csam", is_default=True)


def entry_ids(hash_list: HashList) -> dict[bytes, tuple[int, int]]:
    """Hash value -> (entry pk, hash pk) of the list's live entries."""
    rows = Entry.objects.filter(hash_list=hash_list, removed_seq__isnull=True).values_list(
        "hash__value", "pk", "hash_id"
    )
    return {bytes(value): (pk, hash_id) for value, pk, hash_id in rows}


def org_make(slug: str) -> Organization:
    found = Organization.objects.filter(slug=slug).first()
    return found or organization_create(
        name=slug.replace("-", " ").title(), slug=slug, owner=None, actor=ACTOR, approved=True
    )


def source_make(name: str) -> Source:
    found = Source.objects.filter(name=name).first()
    return found or source_create(
        name=name,
        kind="feed",
        config={"url": "https://feed.example.org/hashes.csv", "format": "csv"},
        access=Source.Access.ALL,
        actor=ACTOR,
    )


def reports_clear(orgs: Sequence[Organization]) -> None:
    ReportListing.objects.filter(reported_entry__organization__in=orgs).delete()
    ReportedEntry.objects.filter(organization__in=orgs).delete()
    Report.objects.filter(organization__in=orgs).delete()


def reports_make(
    orgs: Sequence[Organization], pool: Sequence[bytes], own: dict[bytes, tuple[int, int]], r: int
) -> None:
    """Filed reports of two reported entries each for the first ``r`` pool hashes: report k
    names pool hashes 2k and 2k+1, of organisation k % ORGS, opened 30 days ago."""
    reports = [
        Report(
            organization=orgs[k % ORGS],
            detection_ref=f"bench-{k}",
            state=Report.State.FILED,
            filed_at=NOW - timedelta(days=29),
            created=NOW - timedelta(days=30),
            created_by_label="bench",
        )
        for k in range((r + 1) // 2)
    ]
    Report.objects.bulk_create(reports, batch_size=5000)
    reported = []
    for i, value in enumerate(pool[:r]):
        report = reports[i // 2]
        entry_pk, hash_pk = own[value]
        reported.append(
            ReportedEntry(
                report=report, organization=report.organization, entry_id=entry_pk, hash_id=hash_pk
            )
        )
    ReportedEntry.objects.bulk_create(reported, batch_size=5000)


# --- the passes ----------------------------------------------------------------------------------


def baseline_pass(start: int, end: int) -> tuple[dict[str, float], str]:
    """The feed alone, as the loop reads it."""
    batches: list[float] = []
    with measured() as (figures, counter):
        after, read = start, 0
        while True:
            began = time.perf_counter()
            with transaction.atomic():
                entered, upto = changes.entries_entered_since(
                    after=after, limit=listings.ENTERED_BATCH
                )
            batches.append(time.perf_counter() - began)
            read += len(entered)
            after = upto
            if len(entered) < listings.ENTERED_BATCH or after >= end:
                break
    figures.update(read=read, runs=0, made=0, median=statistics.median(batches))
    figures.update(process=0.0, announce=0.0)
    figures["p99"] = quantile(batches, 0.99)
    return figures, counter.top(4)


def loop_pass(start: int, end: int) -> tuple[dict[str, float], str]:
    """listings_run, called again as beat would until the cursor reaches ``end``."""
    ListingCursor.objects.update_or_create(pk=1, defaults={"after": start})
    processing: list[float] = []
    read = [0]
    original = listings._entered_process

    def timed_process(
        entered: Sequence[changes.EnteredEntry], reported_hashes: set[int] | None = None
    ) -> int:
        began = time.perf_counter()
        try:
            return original(entered, reported_hashes)
        finally:
            processing.append(time.perf_counter() - began)
            read[0] += len(entered)

    announcing = [0.0]
    announce = listings._announce

    def timed_announce(fresh: list[ReportListing], source_lists: dict[int, HashList]) -> None:
        began = time.perf_counter()
        try:
            announce(fresh, source_lists)
        finally:
            announcing[0] += time.perf_counter() - began

    listings._entered_process = timed_process
    listings._announce = timed_announce
    try:
        with measured() as (figures, counter):
            runs = made = 0
            while ListingCursor.objects.get(pk=1).after < end:
                made += listings.listings_run()
                runs += 1
    finally:
        listings._entered_process = original
        listings._announce = announce
    figures.update(read=read[0], runs=runs, made=made, median=statistics.median(processing))
    figures.update(process=sum(processing), announce=announcing[0])
    figures["p99"] = quantile(processing, 0.99)
    return figures, counter.top(4)


def lag_setup(sources: Sequence[Source]) -> Organization:
    """An organisation with LAG_REPORTS filed reports, one entry each, listed by 1 to 5 of the
    sources (every tenth listing dated before the report, which the lag leaves out)."""
    org = org_make("bench-lag")
    reports_clear([org])
    hash_list = own_list(org)
    if not Entry.objects.filter(hash_list=hash_list).exists():
        add(hash_list, [pdq() for _ in range(LAG_REPORTS)])
    own = list(entry_ids(hash_list).values())[:LAG_REPORTS]
    reports = [
        Report(
            organization=org,
            detection_ref=f"bench-lag-{k}",
            state=Report.State.FILED,
            filed_at=NOW - timedelta(days=200 - k % 60),
            created=NOW - timedelta(days=201 - k % 60),
            created_by_label="bench",
        )
        for k in range(len(own))
    ]
    Report.objects.bulk_create(reports, batch_size=5000)
    reported = ReportedEntry.objects.bulk_create(
        [
            ReportedEntry(report=report, organization=org, entry_id=entry_pk, hash_id=hash_pk)
            for report, (entry_pk, hash_pk) in zip(reports, own, strict=True)
        ],
        batch_size=5000,
    )
    lists = [source_lists(source)["csam"] for source in sources]
    rows = []
    for k, reported_entry in enumerate(reported):
        filed = reports[k].filed_at or NOW
        for s in range(1 + k % LAG_SOURCES):
            before = (k + s) % 10 == 0
            rows.append(
                ReportListing(
                    reported_entry=reported_entry,
                    hash_list=lists[(k + s) % LAG_SOURCES],
                    listed_at=filed + timedelta(days=-3 if before else RNG.uniform(0, 120)),
                    before_report=before,
                )
            )
    ReportListing.objects.bulk_create(rows, batch_size=5000)
    return org


def sampled(func: Callable[[], object], calls: int) -> tuple[float, float]:
    samples = []
    for _ in range(calls):
        began = time.perf_counter()
        func()
        samples.append(time.perf_counter() - began)
    return statistics.median(samples), quantile(samples, 0.99)


# --- main ----------------------------------------------------------------------------------------


def main() -> None:
    call_command("migrate", verbosity=0)
    began = time.perf_counter()
    print(
        f"report listings: N = {N:,} entries entering a verified source's list, "
        f"R = {', '.join(f'{r:,}' for r in R_VALUES)} reported hashes "
        f"({FRACTION:.0%} of them among the N); {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    # No queued runs while the bench adds entries: it calls the run itself.
    changes.entries_entered.disconnect(dispatch_uid="reports.listings")
    with scopes_disabled():
        cursor_before = ListingCursor.objects.filter(pk=1).values_list("after", flat=True).first()
        source = source_make("Bench listings source")
        others = [source_make(f"Bench listings source {k}") for k in range(2, LAG_SOURCES + 1)]
        orgs = [org_make(f"bench-listings-{k}") for k in range(ORGS)]
        reports_clear(orgs)

        # The reported hashes: the listed ones are spread evenly through the source's N.
        pool = [pdq() for _ in range(POOL)]
        listed = [value for i, value in enumerate(pool) if is_listed(i)]
        started = time.perf_counter()
        own: dict[bytes, tuple[int, int]] = {}
        for k, org in enumerate(orgs):
            hash_list = own_list(org)
            add(hash_list, [value for i, value in enumerate(pool) if (i // 2) % ORGS == k])
            own.update(entry_ids(hash_list))
        print(
            f"setup: {POOL:,} own-list entries of {ORGS} organisations "
            f"in {time.perf_counter() - started:.1f} s"
        )

        hash_list = source_lists(source)["csam"]
        # Listed hash j goes to a random one of len(listed) evenly spaced slots, so that the
        # listed hashes of any R are spread through the N too.
        step = max(1, N // max(1, len(listed)))
        slots = list(range(min(len(listed), N // step)))
        RNG.shuffle(slots)
        values = [pdq() for _ in range(N)]
        for slot, value in zip(slots, listed, strict=False):
            values[slot * step] = value
        start = changes.sequence_last()
        started = time.perf_counter()
        add(hash_list, values)
        imported = time.perf_counter() - started
        end = changes.sequence_last()
        del values
        print(
            f"source import: {end - start:,} entries in {imported:.1f} s "
            f"({(end - start) / imported:,.0f}/s, chunks of {CHUNK:,}); "
            f"feed range ({start:,}, {end:,}]"
        )
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")

        results: list[tuple[str, tuple[dict[str, float], str]]] = []
        baseline = baseline_pass(start, end)
        results.append(("feed alone (baseline)", baseline))
        for r in R_VALUES:
            reports_clear(orgs)
            reports_make(orgs, pool, own, r)
            results.append((f"listings_run, R={r:,}", loop_pass(start, end)))
        baseline_again = baseline_pass(start, end)
        results.append(("feed alone (baseline, again)", baseline_again))

        # After the passes (out of their feed range): R = 0 means no reported entry at all.
        started = time.perf_counter()
        lag_org = lag_setup([source, *others])
        lag_list_rows = ReportListing.objects.filter(reported_entry__organization=lag_org)
        print(
            f"lag setup: {LAG_REPORTS:,} filed reports, {lag_list_rows.count():,} listings "
            f"in {time.perf_counter() - started:.1f} s"
        )

        def lag() -> object:
            return listings.listing_lag(org=lag_org)

        def lag_read() -> object:
            return list(
                lag_list_rows.values_list(
                    "reported_entry__report_id", "reported_entry__report__filed_at", "listed_at"
                )
            )

        # Right after the bulk load (before autovacuum analyzes the new rows), then after ANALYZE.
        lag_figures = [(sampled(lag, LAG_CALLS), sampled(lag_read, LAG_CALLS))]
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        lag_figures.append((sampled(lag, LAG_CALLS), sampled(lag_read, LAG_CALLS)))
        lag_rows = listings.listing_lag(org=lag_org)
        lag_listings = lag_list_rows.count()

        reports_clear(orgs)
        if cursor_before is None:
            ListingCursor.objects.filter(pk=1).delete()
        else:
            ListingCursor.objects.filter(pk=1).update(after=cursor_before)
    changes.entries_entered.connect(listings.entries_entered, dispatch_uid="reports.listings")

    base_wall = (baseline[0]["wall"] + baseline_again[0]["wall"]) / 2
    print()
    print(
        f"{'pass':<28} {'read':>9} {'runs':>4} {'wall s':>6} {'us/entry':>8} {'x base':>6} "
        f"{'+base s':>7} {'in proc s':>9} {'announce s':>10} {'listings':>8} {'SQL':>7} "
        f"{'batch med ms':>12} {'batch p99 ms':>12} {'peak RSS MiB':>14}"
    )
    for label, (f, _) in results:
        rss = f"{f['rss']:,.0f} (+{f['rss_growth']:,.0f})"
        print(
            f"{label:<28} {f['read']:>9,.0f} {f['runs']:>4.0f} {f['wall']:>6.1f} "
            f"{f['wall'] / max(1, f['read']) * 1e6:>8.1f} {f['wall'] / base_wall:>6.2f} "
            f"{f['wall'] - base_wall:>7.1f} {f['process']:>9.1f} {f['announce']:>10.1f} "
            f"{f['made']:>8,.0f} {f['queries']:>7,.0f} {ms(f['median']):>12} "
            f"{ms(f['p99']):>12} {rss:>14}"
        )
    print(
        "  batch: per 2,000 entries; the feed read for the baseline, for listings_run the time "
        "beyond it (in _entered_process, whose sum is 'in proc s', of which 'announce s' in "
        "_announce: audit lines and webhooks). 'x base' and '+base s' against the mean of the "
        "two baseline passes. Peak RSS during the pass (+ its growth over the pass's start)."
    )
    print("SQL time by statement (the top 4 by time, per pass):")
    for label, (_, top) in results:
        print(f"  {label}: {top}")
    listings_total = sum(row.n for row in lag_rows)
    print(
        f"listing_lag(org), {LAG_REPORTS:,} filed reports, {lag_listings:,} listings over "
        f"{LAG_SOURCES} sources ({len(lag_rows)} rows, {listings_total:,} report-source lags), "
        f"{LAG_CALLS} calls; baseline: the same listing rows read alone (one query, no "
        "aggregation):"
    )
    for moment, ((lag_median, lag_p99), (read_median, read_p99)) in zip(
        ("right after the load", "after ANALYZE"), lag_figures, strict=True
    ):
        print(
            f"  {moment:<21} listing_lag median {ms(lag_median):>7} ms p99 {ms(lag_p99):>7} ms; "
            f"baseline median {ms(read_median):>7} ms p99 {ms(read_p99):>7} ms; "
            f"ratio {lag_median / read_median:.1f}x"
        )
    print(
        f"whole script: {time.perf_counter() - began:.0f} s; process peak RSS "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB"
    )
    print(
        "command: .venv/bin/python -m hub.embedded test -- .venv/bin/python "
        f"bench/report_listings.py  (BENCH_N={N}, BENCH_LISTED_FRACTION={FRACTION})"
    )


if __name__ == "__main__":
    main()
