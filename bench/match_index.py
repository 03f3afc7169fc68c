"""Match-index benchmark: exact-recall multi-index hashing against brute force and faiss.

Builds a PDQ-sized (256-bit) index of BENCH_N random codes (default 1,000,000; 10,000,000 fits in
24 GiB), then prints build time, memory per hash, single-query p50/p99 at radius 31, batch
throughput and recall against a brute-force scan, for our index, for numpy brute force and, when
faiss-cpu is installed, for faiss.IndexBinaryMultiHash(256, 16, 16). Prints, never asserts; needs
no database: `.venv/bin/python bench/match_index.py`. BENCH_FAISS=0 skips faiss (slow to build
at 10M).

Half the queries are stored codes with 0-31 bits flipped (so every query near a stored one has a
real answer), half are random. Uniform random codes are the kind case for bucket sizes; real PDQ
hashes cluster somewhat, so production buckets are less even.
"""

from __future__ import annotations

import itertools
import os
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from matching.index import HammingIndex

RADIUS = 31
BITS = 256

Results = list[set[tuple[int, int]]]


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def near_queries(
    codes: NDArray[np.uint8], count: int, rng: np.random.Generator
) -> NDArray[np.uint8]:
    """Half stored codes with 0-31 bits flipped, half fresh random codes.

    Every fourth near query is adversarial: 31 flips spread so that every 16-bit chunk differs
    (one chunk by one bit, the others by two), which an exact-chunk-only probe misses.
    """
    near = count // 2
    bits = np.unpackbits(codes[rng.integers(0, len(codes), near)], axis=1)
    chunks = np.arange(BITS // 16) * 16
    for row in range(near):
        if row % 4 == 0:
            offsets = np.stack([rng.choice(16, size=2, replace=False) for _ in chunks])
            flips = np.concatenate([chunks + offsets[:, 0], chunks[1:] + offsets[1:, 1]])
        else:
            flips = rng.choice(BITS, size=int(rng.integers(0, RADIUS + 1)), replace=False)
        bits[row, flips] ^= 1
    fresh = rng.integers(0, 256, (count - near, BITS // 8), dtype=np.uint8)
    return np.concatenate([np.packbits(bits, axis=1), fresh])


class BruteForce:
    """A numpy scan of every code: the baseline, and the oracle for recall."""

    def __init__(self, ids: NDArray[np.int64], codes: NDArray[np.uint8]) -> None:
        self.ids = ids
        self.words = codes.view(np.uint64)

    def search(self, queries: NDArray[np.uint8], radius: int) -> Results:
        found = []
        block = 1 << 16
        scratch = np.empty((block, BITS // 64), dtype=np.uint64)
        for query in queries:
            query_words = query.view(np.uint64)
            hits = []
            # Blocks that stay in cache, and the packed byte sum that matching.index uses, make
            # this a fair baseline rather than a strawman (several times faster than one pass).
            for start in range(0, len(self.words), block):
                part = self.words[start : start + block]
                words = np.bitwise_xor(part, query_words, out=scratch[: len(part)])
                packed = np.bitwise_count(words).view(np.uint32).ravel()
                distances = (packed * np.uint32(0x01010101)) >> 24
                distances[packed == 0x40404040] = 256
                hits.append(np.flatnonzero(distances <= radius) + start)
            close = np.concatenate(hits)
            distances = np.bitwise_count(self.words[close] ^ query_words).sum(axis=1)
            found.append(set(zip(self.ids[close].tolist(), distances.tolist(), strict=True)))
        return found


def latencies_ms(
    search: Callable[[NDArray[np.uint8]], object], queries: NDArray[np.uint8]
) -> tuple[float, float]:
    times = []
    for query in queries:
        started = time.perf_counter()
        search(query[None, :])
        times.append((time.perf_counter() - started) * 1000)
    cuts = statistics.quantiles(times, n=100)
    return statistics.median(times), cuts[98]


def throughput(
    search: Callable[[NDArray[np.uint8]], object], queries: NDArray[np.uint8], threads: int = 1
) -> float:
    started = time.perf_counter()
    if threads == 1:
        search(queries)
    else:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(search, np.array_split(queries, threads * 8)))
    return len(queries) / (time.perf_counter() - started)


def recall(found: Results, truth: Results) -> str:
    expected = sum(len(hits) for hits in truth)
    got = sum(len(hits & wanted) for hits, wanted in zip(found, truth, strict=True))
    extra = sum(len(hits - wanted) for hits, wanted in zip(found, truth, strict=True))
    return f"{got}/{expected} = {got / max(expected, 1):.4f} (wrong extras: {extra})"


def row(name: str, figures: dict[str, str]) -> None:
    print(f"  {name:<34}" + "  ".join(f"{key}={value}" for key, value in figures.items()))


def main() -> None:
    n = int(os.environ.get("BENCH_N", "1000000"))
    single = int(os.environ.get("BENCH_QUERIES", "1000"))
    batch = int(os.environ.get("BENCH_BATCH", "2000"))
    sample = int(os.environ.get("BENCH_RECALL_SAMPLE", "60"))
    brute_queries = max(20, min(200, 200_000_000 // n))
    rng = np.random.default_rng(2026)
    codes = rng.integers(0, 256, (n, BITS // 8), dtype=np.uint8)
    ids = np.arange(n, dtype=np.int64)
    queries = near_queries(codes, max(single, batch), rng)
    rng.shuffle(queries)
    print(f"N={n:,} PDQ codes, radius {RADIUS}, {os.cpu_count()} cores; numpy {np.__version__}")

    brute = BruteForce(ids, codes)
    truth = brute.search(queries[:sample], RADIUS)
    print(f"  planted answers in the recall sample: {sum(map(len, truth))} over {sample} queries")

    before = rss_bytes()
    started = time.perf_counter()
    index = HammingIndex.build(ids, codes, bits=BITS, max_radius=RADIUS)
    build_s = time.perf_counter() - started
    rss_delta = rss_bytes() - before

    def ours(batch_queries: NDArray[np.uint8]) -> Results:
        return [set(hits) for hits in index.search(batch_queries, RADIUS)]

    p50, p99 = latencies_ms(ours, queries[:single])
    ours_qps = throughput(ours, queries[:batch])
    ours_qps2 = throughput(ours, queries[:batch], threads=2)
    print("multi-index hashing (matching.index, m=16 x 16 bits):")
    row(
        "",
        {
            "build": f"{build_s:.2f}s",
            "bytes/hash": f"{index.bytes_per_hash():.1f} (rss {rss_delta / n:.1f})",
            "p50": f"{p50:.3f}ms",
            "p99": f"{p99:.3f}ms",
            "batch": f"{ours_qps:,.0f} q/s (2 threads {ours_qps2:,.0f})",
            "recall": recall(ours(queries[:sample]), truth),
        },
    )

    bench_updates(index, queries[:single], p50, rng)

    bp50, bp99 = latencies_ms(lambda q: brute.search(q, RADIUS), queries[:brute_queries])
    brute_qps = throughput(lambda q: brute.search(q, RADIUS), queries[:brute_queries])
    print(f"numpy brute force ({brute_queries} queries):")
    row(
        "",
        {
            "build": "0s",
            "bytes/hash": "40 (codes + ids)",
            "p50": f"{bp50:.2f}ms",
            "p99": f"{bp99:.2f}ms",
            "batch": f"{brute_qps:,.0f} q/s",
        },
    )
    print(
        f"  ratio brute/ours: p50 x{bp50 / p50:.0f}, p99 x{bp99 / p99:.0f},"
        f" throughput x{ours_qps / brute_qps:.0f}"
    )

    bench_faiss(
        codes, queries, single, batch, sample, truth, p50, p99, ours_qps, index.bytes_per_hash()
    )


def bench_updates(
    index: HammingIndex, queries: NDArray[np.uint8], p50: float, rng: np.random.Generator
) -> None:
    """One-at-a-time adds and removals, as change-sequence deltas arrive, then search again."""
    count = 10_000
    codes = rng.integers(0, 256, (count, BITS // 8), dtype=np.uint8)
    first = 1 << 40
    started = time.perf_counter()
    for offset in range(count):
        index.add([first + offset], codes[offset : offset + 1])
    add_us = (time.perf_counter() - started) / count * 1e6
    segments = index.segment_count
    started = time.perf_counter()
    for offset in range(0, count, 2):
        index.remove([first + offset])
    remove_us = (time.perf_counter() - started) / (count // 2) * 1e6
    after_p50, after_p99 = latencies_ms(lambda q: index.search(q, RADIUS), queries)
    print(f"  after {count:,} single adds and {count // 2:,} single removes:")
    row(
        "",
        {
            "add": f"{add_us:.1f}us each",
            "remove": f"{remove_us:.1f}us each",
            "segments": str(segments),
            "p50": f"{after_p50:.3f}ms (x{after_p50 / p50:.2f})",
            "p99": f"{after_p99:.3f}ms",
        },
    )


def bench_faiss(
    codes: NDArray[np.uint8],
    queries: NDArray[np.uint8],
    single: int,
    batch: int,
    sample: int,
    truth: Results,
    p50: float,
    p99: float,
    ours_qps: float,
    ours_bytes: float,
) -> None:
    if os.environ.get("BENCH_FAISS", "1") == "0":
        print("faiss: skipped (BENCH_FAISS=0)")
        return
    try:
        import faiss
    except ImportError:
        print("faiss: not installed (pip install faiss-cpu), skipped")
        return
    n = len(codes)
    before = rss_bytes()
    started = time.perf_counter()
    index = faiss.IndexBinaryMultiHash(BITS, 16, 16)
    index.add(codes)
    build_s = time.perf_counter() - started
    per_hash = (rss_bytes() - before) / n

    def search(batch_queries: NDArray[np.uint8]) -> Results:
        # faiss counts distances strictly below the radius, so 32 means "at most 31".
        limits, distances, labels = index.range_search(
            np.ascontiguousarray(batch_queries), RADIUS + 1
        )
        return [
            set(zip(labels[lo:hi].tolist(), distances[lo:hi].tolist(), strict=True))
            for lo, hi in itertools.pairwise(limits)
        ]

    for nflip in (0, 1):
        # nflip=0 (faiss's default) probes only exact chunk matches, which is exact only up to
        # radius 15; nflip=1 is the same probe set as ours at radius 31.
        index.nflip = nflip
        fp50, fp99 = latencies_ms(search, queries[:single])
        fqps = throughput(search, queries[:batch])
        print(
            f"faiss {faiss.__version__} IndexBinaryMultiHash(256, 16, 16), nflip={nflip},"
            f" {faiss.omp_get_max_threads()} omp threads:"
        )
        row(
            "",
            {
                "build": f"{build_s:.2f}s",
                "bytes/hash": f"rss {per_hash:.1f}",
                "p50": f"{fp50:.3f}ms",
                "p99": f"{fp99:.3f}ms",
                "batch": f"{fqps:,.0f} q/s",
                "recall": recall(search(queries[:sample]), truth),
            },
        )
        print(
            f"  ratio faiss/ours: p50 x{fp50 / p50:.2f}, p99 x{fp99 / p99:.2f},"
            f" throughput ours/faiss x{ours_qps / fqps:.2f},"
            f" memory faiss/ours x{per_hash / ours_bytes:.2f}"
        )


if __name__ == "__main__":
    main()
