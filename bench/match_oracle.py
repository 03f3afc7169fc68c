"""The no-oracle rule's timing residual: a miss, and a submission near a hash held elsewhere.

DESIGN.md invariant 7: a submission near a hash that only another organisation's private list
holds must cost the same work as a miss. Both run the same statements (tests/matching/
test_oracle.py asserts it); what may remain is the index's own work on a near candidate (it
checks one more code) and the database reading a candidate's entries to find none the caller
may match. This prints both medians and p99s side by side, interleaved request by request so
that machine noise falls on both alike, and their ratio. In process (the match service itself,
not HTTP), on PostgreSQL holding N PDQ hashes in a third organisation's private list.

Run by `make bench`; asserts nothing. ``BENCH_ORACLE_N`` (default 200,000), ``BENCH_ORACLE_ROUNDS``
(default 2,000).
"""

from __future__ import annotations

import os
import random
import secrets
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hub.settings")

import django

django.setup()

from django.core.management import call_command
from django.db import connection, reset_queries
from django.test.utils import CaptureQueriesContext
from django_scopes import scope

from bench._pdq_fill import fill_pdq, near, stored_values
from hub.audit import Actor
from hub.models import Organization
from hub.services import organization_create
from lists.models import HashList
from matching.services import match_hashes

N = int(os.environ.get("BENCH_ORACLE_N", "200000"))
ROUNDS = int(os.environ.get("BENCH_ORACLE_ROUNDS", "2000"))
SYSTEM = Actor(system="bench")


def organization(name: str) -> Organization:
    tag = secrets.token_hex(3)
    return organization_create(
        name=f"{name} {tag}", slug=f"{name.lower()}-{tag}", owner=None, approved=True, actor=SYSTEM
    )


def fill(org: Organization) -> list[str]:
    """N random PDQ hashes in ``org``'s private CSAM list; returns some of the stored values."""
    with scope(organization=org.pk):
        csam = HashList.objects.get(organization=org, category="csam", is_default=True)
    fill_pdq(csam.pk, N)
    return stored_values(csam.pk, 5000)


def timed(caller: Organization, value: str) -> tuple[float, int]:
    started = time.perf_counter()
    outcome = match_hashes(org=caller, items=[{"type": "pdq", "value": value}], actor=SYSTEM)
    elapsed = time.perf_counter() - started
    if outcome.results[0].matches:  # neither kind may match: the caller holds nothing
        raise SystemExit("a submission matched: the benchmark is not measuring what it says")
    return elapsed, len(outcome.results[0].matches)


def statements(caller: Organization, value: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        timed(caller, value)
    return len(captured)


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98]


def main() -> None:
    random.seed(17)
    call_command("migrate", verbosity=0)
    holder, caller = organization("Holder"), organization("Caller")
    started = time.perf_counter()
    stored = fill(holder)
    print(f"filled {N:,} PDQ hashes into a private list of another org in "
          f"{time.perf_counter() - started:.1f} s")  # fmt: skip
    timed(caller, near(stored[0], 1))  # loads the index
    misses: list[float] = []
    nears: list[float] = []
    tracemalloc.start()
    for round_number in range(ROUNDS):
        miss = secrets.token_hex(32)
        close = near(random.choice(stored), random.randint(1, 16))
        # Alternate which goes first, so neither always follows the other's warm caches.
        pair = [("miss", miss), ("near", close)]
        if round_number % 2:
            pair.reverse()
        for kind, value in pair:
            elapsed, _ = timed(caller, value)
            (misses if kind == "miss" else nears).append(elapsed)
        reset_queries()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    miss_statements = statements(caller, secrets.token_hex(32))
    near_statements = statements(caller, near(stored[1], 4))
    print(f"N={N:,} stored elsewhere, {ROUNDS:,} requests of each kind, one PDQ hash each")
    print(f"{'kind':<34}{'median ms':>10}{'p99 ms':>10}{'statements':>12}")
    for label, values, count in (
        ("miss (nothing near)", misses, miss_statements),
        ("near a hash held only elsewhere", nears, near_statements),
    ):
        print(f"{label:<34}{statistics.median(values) * 1e3:>10.3f}"
              f"{p99(values) * 1e3:>10.3f}{count:>12}")  # fmt: skip
    print(f"ratio near/miss: median {statistics.median(nears) / statistics.median(misses):.3f}, "
          f"p99 {p99(nears) / p99(misses):.3f}; peak Python memory while timing "
          f"{peak / 2**20:.1f} MiB")  # fmt: skip


if __name__ == "__main__":
    main()
