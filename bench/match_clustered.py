"""Clustered-index benchmark: bounded searches next to clusters of near-duplicates.

Builds one index of BENCH_N uniform random PDQ-sized codes (default 1,000,000) plus
BENCH_CLUSTERS clusters (default 4) of BENCH_CLUSTER_SIZE near-duplicates (default 50,000, each
its centre with 1-8 random bits flipped), as a tenant who wanted to slow the hub down would
build them. Rows carry holder classes as the match engine gives them: the uniform rows class 1,
each cluster its own class. Then, at radius 31 with the match service's cap of 20, it times
single queries of four kinds, interleaved:

- random: uniform random codes (the common miss);
- inside: a cluster's centre with 0-4 bits flipped, the caller allowed to match the cluster;
- near: 32-48 bits from a cluster's centre (in range of some members, or just out of it);
- inside, another's: inside a cluster the caller may not match (class weight 0).

The same index built with clustering turned off (``CLUSTER_ATTEMPTS = 0``: the multi-index alone,
as before this change) is timed side by side in the same run, and the ratio printed. Prints
N, median, p99, rows returned and the total counted, build time and memory; never asserts.

    .venv/bin/python bench/match_clustered.py
    BENCH_N=200000 BENCH_CLUSTER_SIZE=20000 .venv/bin/python bench/match_clustered.py

Goal (issue 18): p99 <= 2 ms inside a cluster, <= 1 ms near one.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from matching import index as index_module
from matching.index import HammingIndex

RADIUS = 31
LIMIT = 20
BYTES = 32


def flip(
    codes: NDArray[np.uint8], counts: NDArray[np.int64], rng: np.random.Generator
) -> NDArray[np.uint8]:
    bits = np.unpackbits(codes, axis=1)
    for row, count in enumerate(counts):
        bits[row, rng.choice(256, size=int(count), replace=False)] ^= 1
    return np.packbits(bits, axis=1)


def flip_fast(
    centre: NDArray[np.uint8], count: int, most: int, rng: np.random.Generator
) -> NDArray[np.uint8]:
    """``count`` copies of ``centre`` with 1..most random bits flipped (vectorised)."""
    bits = np.tile(np.unpackbits(centre), (count, 1))
    flips = rng.integers(1, most + 1, count)
    for step in range(most):
        rows = np.flatnonzero(flips > step)
        bits[rows, rng.integers(0, 256, len(rows))] ^= 1
    return np.packbits(bits, axis=1)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    n = int(os.environ.get("BENCH_N", "1000000"))
    clusters = int(os.environ.get("BENCH_CLUSTERS", "4"))
    size = int(os.environ.get("BENCH_CLUSTER_SIZE", "50000"))
    per_kind = int(os.environ.get("BENCH_QUERIES", "2000"))
    rng = np.random.default_rng(18)

    uniform = rng.integers(0, 256, (n, BYTES), dtype=np.uint8)
    centres = rng.integers(0, 256, (clusters, BYTES), dtype=np.uint8)
    members = [flip_fast(centre, size, 8, rng) for centre in centres]
    codes = np.concatenate([uniform, *members])
    codes = np.unique(codes, axis=0)  # one row per hash, as the engine holds
    is_member = np.zeros(len(codes), dtype=np.int32)
    # Classes: which centre a row is near (within 8 bits), else 0 → class 1 for uniform rows.
    classes = np.ones(len(codes), dtype=np.int32)
    words = codes.view(np.uint64)
    for number, centre in enumerate(centres):
        distances = np.bitwise_count(words ^ centre.view(np.uint64)).sum(axis=1)
        near = distances <= 8
        classes[near] = 2 + number
        is_member |= near
    ids = np.arange(len(codes), dtype=np.int64)
    print(
        f"N = {n:,} uniform + {clusters} clusters of {size:,} (1-8 bits from their centre): "
        f"{len(codes):,} distinct codes, {int(is_member.sum()):,} in clusters"
    )

    allowed_all = np.ones(2 + clusters, dtype=np.int64)
    not_cluster_0 = allowed_all.copy()
    not_cluster_0[2] = 0

    queries: list[tuple[str, NDArray[np.uint8], NDArray[np.int64]]] = []
    for i in range(per_kind):
        centre = centres[i % clusters]
        queries.append(("random", rng.integers(0, 256, BYTES, dtype=np.uint8), allowed_all))
        inside = flip(centre[None, :], np.array([rng.integers(0, 5)]), rng)[0]
        queries.append(("inside", inside, allowed_all))
        near = flip(centre[None, :], np.array([rng.integers(32, 49)]), rng)[0]
        queries.append(("near", near, allowed_all))
        hidden = flip(centres[0][None, :], np.array([rng.integers(0, 5)]), rng)[0]
        queries.append(("inside, another's", hidden, not_cluster_0))
    order = rng.permutation(len(queries))

    figures: dict[str, dict[str, tuple[float, float, float, float]]] = {}
    for build, attempts in (
        ("clustered (this change)", index_module.CLUSTER_ATTEMPTS),
        ("multi-index only (before)", 0),
    ):
        saved = index_module.CLUSTER_ATTEMPTS
        index_module.CLUSTER_ATTEMPTS = attempts
        started = time.perf_counter()
        index = HammingIndex.build(ids, codes, classes=classes, bits=256, max_radius=RADIUS)
        built = time.perf_counter() - started
        index_module.CLUSTER_ATTEMPTS = saved
        print(
            f"\n{build}: built in {built:.1f} s, {index.memory_bytes() / 2**20:,.0f} MiB "
            f"({index.bytes_per_hash():.1f} bytes a hash), {index.cluster_count} groups"
        )
        times: dict[str, list[float]] = {}
        returned: dict[str, list[int]] = {}
        totals: dict[str, list[int]] = {}
        for _ in range(50):  # warm up
            index.search_bounded(queries[0][1], RADIUS, weights=allowed_all, limit=LIMIT)
        for position in order:
            kind, query, weights = queries[position]
            started = time.perf_counter()
            (found,) = index.search_bounded(query, RADIUS, weights=weights, limit=LIMIT)
            elapsed = time.perf_counter() - started
            times.setdefault(kind, []).append(elapsed * 1000)
            returned.setdefault(kind, []).append(len(found.hits))
            totals.setdefault(kind, []).append(found.total)
        figures[build] = {}
        print(f"  {'kind':<20} {'N':>6} {'median ms':>10} {'p99 ms':>8} {'hits':>6} {'total':>8}")
        for kind, values in times.items():
            median, p99 = statistics.median(values), percentile(values, 0.99)
            hits = statistics.median(returned[kind])
            total = statistics.median(totals[kind])
            figures[build][kind] = (median, p99, hits, total)
            print(
                f"  {kind:<20} {len(values):>6} {median:>10.3f} {p99:>8.3f} {hits:>6.0f} "
                f"{total:>8.0f}"
            )
        del index

    after, before = figures["clustered (this change)"], figures["multi-index only (before)"]
    print("\nratio before / after (p50, p99):")
    for kind in after:
        print(
            f"  {kind:<20} {before[kind][0] / after[kind][0]:>6.1f}x "
            f"{before[kind][1] / after[kind][1]:>6.1f}x"
        )
    print(
        f"\ngoal: inside p99 <= 2 ms (now {after['inside'][1]:.3f}), "
        f"near p99 <= 1 ms (now {after['near'][1]:.3f})"
    )


if __name__ == "__main__":
    main()
