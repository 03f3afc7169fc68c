"""Match-index benchmark: exact-recall multi-index hashing against brute force and faiss.

For each size (default 1,000,000 and then 10,000,000 random PDQ-sized codes; 10M fits in 24 GiB
with faiss included) it builds our index and prints, in the same run: build time, memory per
hash, single-query p50/p99 at radius 31, batch throughput and recall against a brute-force scan;
the time to save a snapshot and to load it memory-mapped, with the loaded index's latencies; the
cost of single adds and removals; the same figures for a numpy brute-force scan and for faiss
configured as Meta's Hasher-Matcher-Actioner (HMA) configures it, with the ratios; and a summary
table. Prints, never asserts; needs no database:

    .venv/bin/python bench/match_index.py            # 1M, then 10M
    .venv/bin/python bench/match_index.py --quick    # 1M only
    .venv/bin/python bench/match_index.py --sizes 200000,3000000
    .venv/bin/python bench/match_index.py --sizes 100000000   # see "Sizes that do not fit"

BENCH_N (one size), BENCH_QUERIES, BENCH_BATCH and BENCH_RECALL_SAMPLE still override the
defaults; BENCH_FAISS=0 (or --no-faiss) skips faiss, which takes a while to build at 10M.

HMA's configuration
-------------------
HMA (pinned at 1777d8649f66, as hma/selectors.py pins it) builds its PDQ index through
python-threatexchange (``HMA_PIN`` below; threatexchange 1.2.17 on PyPI reads the same):
``PdqSignal.get_index_cls()`` is ``PDQIndex``, whose empty index is ``PDQMultiHashIndex()``:
``faiss.IndexBinaryIDMap2(faiss.IndexBinaryMultiHash(256, nhash=16, 256 // 16))``, queried at
``PDQIndex.get_match_threshold()`` = 31 with ``nflip = threshold // nhash`` = 31 // 16 = 1 and
``range_search(queries, threshold + 1)``. With 16 chunks of 16 bits, a code within 31 bits has
some chunk within one bit of the query's (16 x 2 = 32 > 31), so HMA's search is exact up to 31.
The faiss rows below build that same wrapped index and print two settings of it: ``nflip=1``,
HMA's, and ``nflip=0``, faiss's default, which is *not* HMA's and is exact only up to radius 15
(an earlier version of this script called nflip=0 "HMA's setting": that was wrong).
Not counted here: HMA's ``PDQIndex`` also keeps a Python list of (hex string, entry) per hash.

Sizes that do not fit
---------------------
A size whose estimated peak (bytes per hash measured on this code at 1M, times N, for our index
with the benchmark's own arrays, and for faiss) exceeds half the memory available when the run
starts is not run as asked: the script runs every engine at the largest round size that fits
(faiss at a smaller one than ours when it must), and then prints the asked size's figures
extrapolated from the two largest sizes it ran, saying which figures are extrapolated and how
(memory, build, save and snapshot size linear in N; query latency and throughput fitted as
``a + b * N`` through the two points, since for uniform random codes the candidates a radius-31
probe gathers grow linearly: 16 chunks x 17 buckets x N / 65,536 rows).

Half the queries are stored codes with 0-31 bits flipped (so every query near a stored one has a
real answer), half are random. Uniform random codes are the kind case for bucket sizes; real PDQ
hashes cluster somewhat, so production buckets are less even.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from matching.index import HammingIndex

RADIUS = 31
BITS = 256

# The HMA version whose PDQ index configuration the faiss rows reproduce. The hub pins HMA at
# facebook/ThreatExchange 1777d8649f66 (hma/selectors.py, HMA_COMMIT), whose
# hasher-matcher-actioner/pyproject.toml depends on threatexchange>=1.2.15 and builds every index
# with ``signal_type.get_index_cls().build(...)`` (OpenMediaMatch/background_tasks/
# build_index.py). The PDQ index code below was read in threatexchange 1.2.17 from PyPI (the
# newest release that satisfies it) and in the repository's python-threatexchange, each file at
# the commit named.
HMA_PIN = {
    "repository": "facebook/ThreatExchange",
    "HMA (hasher-matcher-actioner)": "1777d8649f66cc79948b62b903995d268eeab65c",
    "signal.py (PdqSignal.get_index_cls -> PDQIndex)": "0a32d650d1fa63c7ae3845422f7953711e7802ae",
    "pdq_index.py (PDQIndex: PDQMultiHashIndex(), threshold 31)": (
        "1c270f25600008a1bc7aac6cbcfea8f8941769ba"
    ),
    "pdq_faiss_matcher.py (IDMap2(MultiHash(256, 16, 16)), nflip = 31 // 16)": (
        "1a44ddc62d71b069f9b440cca12a982a0f26ec99"
    ),
}
HMA_THREATEXCHANGE = "threatexchange 1.2.17 (PyPI): the same three files, the same configuration"
HMA_NHASH = 16
HMA_THRESHOLD = 31
HMA_NFLIP = HMA_THRESHOLD // HMA_NHASH  # = 1

# Peak bytes per hash while a size runs, measured with this script at 1M (2026-12, numpy 2.4,
# faiss 1.15): our index's RSS (~134) plus the benchmark's own codes and ids (40) and slack; faiss
# IDMap2(MultiHash) (~340 for the multi-hash, plus the id maps) plus the same 40.
PEAK_BYTES_OURS = 190
PEAK_BYTES_FAISS = 480

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
    """p50 and p99 of one query at a time, after a short warm-up that is not counted."""
    for query in queries[:20]:
        search(query[None, :])
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


Summary = dict[str, dict[str, float]]
"""Per engine: build_s, bytes, p50, p99, qps (NaN where not measured)."""


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="run N = 1M only")
    parser.add_argument("--sizes", help="comma-separated sizes (default 1000000,10000000)")
    parser.add_argument("--no-faiss", action="store_true", help="skip faiss (as BENCH_FAISS=0)")
    args = parser.parse_args(argv)
    if args.sizes:
        sizes = [int(size) for size in args.sizes.split(",")]
    elif "BENCH_N" in os.environ:
        sizes = [int(os.environ["BENCH_N"])]
    elif args.quick:
        sizes = [1_000_000]
    else:
        sizes = [1_000_000, 10_000_000]
    with_faiss = not args.no_faiss and os.environ.get("BENCH_FAISS", "1") != "0"
    budget = available_bytes() // 2
    print(
        f"{os.cpu_count()} cores; numpy {np.__version__}; radius {RADIUS}; sizes {sizes};"
        f" memory budget {budget / 2**30:.1f} GiB (half of what is available now)"
    )
    runs, targets = plan(sizes, budget, with_faiss=with_faiss)
    summaries = {n: bench_size(n, with_faiss=faiss_here) for n, faiss_here in runs}
    print_summary(summaries)
    for target in targets:
        print_extrapolation(target, summaries)


def available_bytes() -> int:
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 8 * 2**30


def largest_round_size(budget: int, per_hash: int) -> int:
    """The largest N of the form 1, 2, 5 x 10^k (and multiples of 10M above 10M) that fits."""
    fits = budget // per_hash
    if fits >= 10_000_000:
        return fits // 10_000_000 * 10_000_000
    step = 10 ** (len(str(fits)) - 1)
    return max(step, fits // step * step)


def plan(
    sizes: Sequence[int], budget: int, *, with_faiss: bool
) -> tuple[list[tuple[int, bool]], list[int]]:
    """Which sizes run (each with or without faiss), and which asked sizes are extrapolated."""
    runs: dict[int, bool] = {}
    targets = []
    for n in sizes:
        ours_fits = n * PEAK_BYTES_OURS <= budget
        faiss_fits = n * PEAK_BYTES_FAISS <= budget
        if ours_fits:
            runs[n] = runs.get(n, False) or (with_faiss and faiss_fits)
            if with_faiss and not faiss_fits:
                print(
                    f"N={n:,}: faiss would need about {n * PEAK_BYTES_FAISS / 2**30:.1f} GiB,"
                    " over the budget: its rows are skipped at this size"
                )
            continue
        ours_n = largest_round_size(budget, PEAK_BYTES_OURS)
        faiss_n = largest_round_size(budget, PEAK_BYTES_FAISS)
        print(
            f"N={n:,} needs about {n * PEAK_BYTES_OURS / 2**30:.1f} GiB for our index"
            f" ({PEAK_BYTES_OURS} B/hash with the benchmark's arrays) and"
            f" {n * PEAK_BYTES_FAISS / 2**30:.1f} GiB for faiss ({PEAK_BYTES_FAISS} B/hash):"
            f" over the budget. Running ours at N={ours_n:,}"
            + (f" and everything, faiss included, at N={faiss_n:,}" if with_faiss else "")
            + f", then extrapolating to N={n:,} from the two largest sizes run."
        )
        if with_faiss:
            runs[faiss_n] = True
        runs.setdefault(ours_n, False)
        # A small size too, so that every engine has two points to fit latency through.
        runs[1_000_000] = with_faiss
        targets.append(n)
    return sorted(runs.items()), targets


def bench_size(n: int, *, with_faiss: bool) -> Summary:
    # Fewer queries at large sizes, where each costs milliseconds (and faiss's tens of them).
    scaled = str(max(300, min(2000, 20_000_000_000 // n)))
    single = int(os.environ.get("BENCH_QUERIES", scaled))
    batch = int(os.environ.get("BENCH_BATCH", scaled))
    sample = int(os.environ.get("BENCH_RECALL_SAMPLE", "60"))
    brute_queries = max(20, min(200, 200_000_000 // n))
    rng = np.random.default_rng(2026)
    codes = rng.integers(0, 256, (n, BITS // 8), dtype=np.uint8)
    ids = np.arange(n, dtype=np.int64)
    queries = near_queries(codes, max(single, batch), rng)
    rng.shuffle(queries)
    print(f"\n== N={n:,} PDQ codes")

    brute = BruteForce(ids, codes)
    truth = brute.search(queries[:sample], RADIUS)
    print(f"  planted answers in the recall sample: {sum(map(len, truth))} over {sample} queries")
    # Our index lives only inside bench_ours, so that its memory is free again for faiss.
    summary = bench_ours(ids, codes, queries[:single], queries[:batch], queries[:sample], truth)
    ours = summary["ours (built)"]

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
        f"  ratio brute/ours: p50 x{bp50 / ours['p50']:.0f}, p99 x{bp99 / ours['p99']:.0f},"
        f" throughput ours/brute x{ours['qps'] / brute_qps:.0f}"
    )
    summary["numpy brute force"] = {
        "build_s": 0.0,
        "bytes": 40.0,
        "p50": bp50,
        "p99": bp99,
        "qps": brute_qps,
    }

    if with_faiss:
        summary.update(bench_faiss(codes, queries, single, batch, sample, truth, ours))
    else:
        print("faiss: skipped (--no-faiss or BENCH_FAISS=0)")
    return summary


def bench_ours(
    ids: NDArray[np.int64],
    codes: NDArray[np.uint8],
    single: NDArray[np.uint8],
    batch: NDArray[np.uint8],
    sample: NDArray[np.uint8],
    truth: Results,
) -> Summary:
    n = len(ids)
    before = rss_bytes()
    started = time.perf_counter()
    index = HammingIndex.build(ids, codes, bits=BITS, max_radius=RADIUS)
    build_s = time.perf_counter() - started
    rss_delta = rss_bytes() - before

    def ours(batch_queries: NDArray[np.uint8]) -> Results:
        return [set(hits) for hits in index.search(batch_queries, RADIUS)]

    p50, p99 = latencies_ms(ours, single)
    qps = throughput(ours, batch)
    qps2 = throughput(ours, batch, threads=2)
    print("multi-index hashing (matching.index, m=16 x 16 bits), built:")
    row(
        "",
        {
            "build": f"{build_s:.2f}s",
            "bytes/hash": f"{index.bytes_per_hash():.1f} (rss {rss_delta / n:.1f})",
            "p50": f"{p50:.3f}ms",
            "p99": f"{p99:.3f}ms",
            "batch": f"{qps:,.0f} q/s (2 threads {qps2:,.0f})",
            "recall vs brute force": recall(ours(sample), truth),
        },
    )
    built = {"build_s": build_s, "bytes": index.bytes_per_hash(), "p50": p50, "p99": p99}
    summary: Summary = {"ours (built)": {**built, "qps": qps, "rss": rss_delta / n}}
    summary["ours (mmap snapshot)"] = bench_snapshot(index, single, batch)
    bench_updates(index, single, p50, np.random.default_rng(7))
    return summary


def bench_snapshot(
    index: HammingIndex, queries: NDArray[np.uint8], batch_queries: NDArray[np.uint8]
) -> dict[str, float]:
    """Save, load memory-mapped (as worker processes do at start), search the loaded copy."""
    with tempfile.TemporaryDirectory(prefix="hashhub-bench-") as scratch:
        directory = Path(scratch) / "pdq"
        started = time.perf_counter()
        index.save(directory)
        save_s = time.perf_counter() - started
        disk = sum(path.stat().st_size for path in directory.resolve().iterdir())
        started = time.perf_counter()
        loaded = HammingIndex.load(directory, bits=BITS)
        load_s = time.perf_counter() - started
        started = time.perf_counter()
        loaded.search(queries[:1], RADIUS)
        first_ms = (time.perf_counter() - started) * 1000
        same = loaded.search(queries[:200], RADIUS) == index.search(queries[:200], RADIUS)
        p50, p99 = latencies_ms(lambda q: loaded.search(q, RADIUS), queries)
        qps = throughput(lambda q: loaded.search(q, RADIUS), batch_queries)
        print("  snapshot (save, then load with mmap; the files stay in the page cache):")
        row(
            "",
            {
                "save": f"{save_s:.2f}s ({disk / 2**20:,.0f} MiB)",
                "load": f"{load_s * 1000:.1f}ms",
                "first query": f"{first_ms:.1f}ms",
                "bytes/hash": f"{loaded.bytes_per_hash():.1f}",
                "p50": f"{p50:.3f}ms",
                "p99": f"{p99:.3f}ms",
                "batch": f"{qps:,.0f} q/s",
                "same results": str(same),
            },
        )
    return {
        "build_s": load_s,
        "bytes": loaded.bytes_per_hash(),
        "p50": p50,
        "p99": p99,
        "qps": qps,
        "save_s": save_s,
        "disk": float(disk),
    }


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
    ours: dict[str, float],
) -> Summary:
    """faiss built as HMA builds its PDQ index (see HMA_PIN), searched with nflip 1 and 0."""
    try:
        import faiss
    except ImportError:
        print("faiss: not installed (pip install faiss-cpu), skipped")
        return {}
    n = len(codes)
    before = rss_bytes()
    started = time.perf_counter()
    # PDQMultiHashIndex(nhash=16): IndexBinaryIDMap2(IndexBinaryMultiHash(256, 16, 256 // 16)),
    # filled with add_with_ids (HMA passes its own ids).
    index = faiss.IndexBinaryIDMap2(faiss.IndexBinaryMultiHash(BITS, HMA_NHASH, BITS // HMA_NHASH))
    index.add_with_ids(codes, np.arange(n, dtype=np.int64))
    build_s = time.perf_counter() - started
    per_hash = (rss_bytes() - before) / n
    inner: Any = faiss.downcast_IndexBinary(index.index)

    def search(batch_queries: NDArray[np.uint8]) -> Results:
        # As HMA: range_search(queries, threshold + 1), faiss counting distances strictly below.
        limits, distances, labels = index.range_search(
            np.ascontiguousarray(batch_queries), RADIUS + 1
        )
        return [
            set(zip(labels[lo:hi].tolist(), distances[lo:hi].tolist(), strict=True))
            for lo, hi in itertools.pairwise(limits)
        ]

    pin = ", ".join(
        f"{name} @ {commit[:12]}" for name, commit in HMA_PIN.items() if name != "repository"
    )
    print(f"faiss as HMA configures it ({HMA_PIN['repository']}: {pin}; {HMA_THREATEXCHANGE}):")
    summary: Summary = {}
    for nflip, label in (
        (HMA_NFLIP, f"nflip={HMA_NFLIP} (HMA's setting: {HMA_THRESHOLD} // {HMA_NHASH})"),
        (0, "nflip=0 (faiss's default, NOT HMA's: exact only up to radius 15)"),
    ):
        inner.nflip = nflip
        fp50, fp99 = latencies_ms(search, queries[:single])
        fqps = throughput(search, queries[:batch])
        print(
            f"faiss {faiss.__version__} IDMap2(MultiHash(256, 16, 16)), range search 32,"
            f" {label}, {faiss.omp_get_max_threads()} omp threads:"
        )
        row(
            "",
            {
                "build": f"{build_s:.2f}s",
                "bytes/hash": f"rss {per_hash:.1f}",
                "p50": f"{fp50:.3f}ms",
                "p99": f"{fp99:.3f}ms",
                "batch": f"{fqps:,.0f} q/s",
                "recall vs brute force": recall(search(queries[:sample]), truth),
            },
        )
        print(
            f"  ratio faiss/ours: p50 x{fp50 / ours['p50']:.2f}, p99 x{fp99 / ours['p99']:.2f},"
            f" throughput ours/faiss x{ours['qps'] / fqps:.2f},"
            f" memory faiss/ours x{per_hash / ours['bytes']:.2f}"
        )
        name = "faiss HMA nflip=1" if nflip == HMA_NFLIP else "faiss nflip=0 (not HMA)"
        summary[name] = {
            "build_s": build_s,
            "bytes": per_hash,
            "p50": fp50,
            "p99": fp99,
            "qps": fqps,
        }
    return summary


def print_summary(summaries: dict[int, Summary]) -> None:
    print("\n== summary (radius 31; load time in the build column for the snapshot)")
    print(
        f"  {'N':>11} {'engine':<26} {'build s':>8} {'B/hash':>7} {'p50 ms':>8} {'p99 ms':>8}"
        f" {'batch q/s':>10} {'p99 / ours':>10}"
    )
    for n, summary in summaries.items():
        ours_p99 = summary["ours (built)"]["p99"]
        for engine, figures in summary.items():
            print(
                f"  {n:>11,} {engine:<26} {figures['build_s']:>8.2f} {figures['bytes']:>7.1f}"
                f" {figures['p50']:>8.3f} {figures['p99']:>8.3f} {figures['qps']:>10,.0f}"
                f" {figures['p99'] / ours_p99:>10.2f}"
            )


def _fitted(points: list[tuple[int, dict[str, float]]], key: str, target: int) -> float:
    """``a + b * N`` through the two largest sizes run (linear from the origin with only one)."""
    n1, f1 = points[-1]
    if len(points) == 1:
        return f1[key] / n1 * target
    n0, f0 = points[-2]
    slope = (f1[key] - f0[key]) / (n1 - n0)
    return max(f1[key], f1[key] + slope * (target - n1))


def print_extrapolation(target: int, summaries: dict[int, Summary]) -> None:
    """The asked size's figures, extrapolated (and said to be) from the sizes that ran."""
    print(f"\n== N={target:,}: EXTRAPOLATED, not measured (it does not fit this machine's budget)")
    for engine in ("ours (built)", "ours (mmap snapshot)", "faiss HMA nflip=1"):
        points = sorted((n, s[engine]) for n, s in summaries.items() if engine in s)
        if not points:
            continue
        n1, f1 = points[-1]
        scale = target / n1
        p50 = _fitted(points, "p50", target)
        figures = {
            "memory": f"{f1['bytes']:.1f} B/hash = {f1['bytes'] * target / 2**30:.1f} GiB",
            "p50": f"{p50:.2f}ms",
            "p99": f"{_fitted(points, 'p99', target):.2f}ms",
            "batch": f"{f1['qps'] * f1['p50'] / p50:,.0f} q/s",
        }
        if engine == "ours (mmap snapshot)":
            figures = {
                "save": f"{f1['save_s'] * scale:.0f}s",
                "snapshot": f"{f1['disk'] * scale / 2**30:.1f} GiB on disk",
                "load (mmap)": f"{f1['build_s'] * 1000:.0f}ms (pages fault in on first use)",
                **figures,
            }
        else:
            figures = {"build": f"{f1['build_s'] * scale:.0f}s", **figures}
        print(
            f"  {engine}, from N={n1:,}"
            + (f" and N={points[-2][0]:,}" if len(points) > 1 else "")
            + ":"
        )
        row("", figures)
    print(
        "  how: memory, build, save and snapshot size scale linearly from the largest size run;"
        " p50/p99 as a + b*N through the two largest sizes run (radius-31 candidates grow"
        " linearly with N for random codes); batch q/s scaled with p50."
    )


if __name__ == "__main__":
    main()
