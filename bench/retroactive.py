"""Retroactive-matching benchmark: a day's new list hashes checked against every kept submission.

What it measures: ``matching.retroactive.KeptIndex.search``, the step of retroactive matching
that grows with the kept submissions, for a daily delta of D new PDQ hashes (default 100,000)
against N kept PDQ submissions (default 10,000,000) at the server's largest PDQ radius (31),
with the threads the hub uses (``HASHHUB_RETROACTIVE_THREADS``, default 2). The kept rows are
random codes put straight into the index, not into PostgreSQL (loading 10M rows takes longer
than the benchmark; the index is what a run searches), with expiries spread from five days ago
to thirty days ahead, so about one in seven is expired and must never be returned. One delta
hash in a hundred is a kept code with 0-31 bits flipped, so there are real hits to find.

Beside it, in the same run: a brute-force numpy scan (XOR and popcount over all N codes) of a
sample of the delta, extrapolated to D, with the ratio; recall of the index against that scan
on the sample (expired rows left out of both); the index's build time and memory per hash; the
cost of catching up 100,000 new kept submissions (``KeptIndex.add_rows``) and of a save and a
memory-mapped load of the snapshot; the process's peak RSS. Prints, never asserts; needs no
database:

    .venv/bin/python bench/retroactive.py                  # N = 10M, D = 100k
    .venv/bin/python bench/retroactive.py --n 1000000 --delta 20000

The other steps of a run (reading the entered entries, re-running the organisation's match
for each candidate) cost per *candidate*, not per kept submission: with random data almost
every delta hash has none.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hub.settings")

import django

django.setup()

from matching.index import HammingIndex
from matching.retroactive import KeptIndex, _hour

NOW = dt.datetime(2026, 12, 7, 12, 0, tzinfo=dt.UTC)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def flipped(codes: NDArray[np.uint8], rng: np.random.Generator) -> NDArray[np.uint8]:
    """Each code with 0-31 random bits flipped."""
    out = codes.copy()
    bits = np.unpackbits(out, axis=1)
    for row, flips in enumerate(rng.integers(0, 32, len(out))):
        where = rng.choice(256, size=int(flips), replace=False)
        bits[row, where] ^= 1
    return np.packbits(bits, axis=1)


def brute_force(
    codes: NDArray[np.uint8], alive: NDArray[np.bool_], queries: NDArray[np.uint8], radius: int
) -> list[set[int]]:
    words = codes.view(np.uint64)
    found = []
    for query in queries.view(np.uint64):
        distance = np.zeros(len(words), dtype=np.uint16)
        for column in range(words.shape[1]):
            distance += np.bitwise_count(words[:, column] ^ query[column])
        found.append(set(np.flatnonzero((distance <= radius) & alive).tolist()))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000_000, help="kept submissions")
    parser.add_argument("--delta", type=int, default=100_000, help="new list hashes")
    parser.add_argument("--threads", type=int, default=None, help="search threads")
    parser.add_argument("--sample", type=int, default=20, help="delta hashes brute-forced")
    parser.add_argument("--seed", type=int, default=19)
    args = parser.parse_args()
    from django.conf import settings

    threads = args.threads or settings.HASHHUB_RETROACTIVE_THREADS
    rng = np.random.default_rng(args.seed)
    n, d = args.n, args.delta

    print(f"retroactive matching: N = {n:,} kept PDQ submissions, D = {d:,} new list hashes")
    print(f"machine: {os.cpu_count()} cores; search threads: {threads}")
    codes = rng.integers(0, 256, (n, 32), dtype=np.uint8)
    now_hour = _hour(NOW)
    classes = rng.integers(now_hour - 5 * 24, now_hour + 30 * 24, n)
    alive = classes >= now_hour
    ids = np.arange(1, n + 1, dtype=np.int64)

    kept = KeptIndex("pdq")
    started = time.perf_counter()
    kept.index = HammingIndex.build(ids, codes, bits=256, max_radius=kept.radius, classes=classes)
    kept.max_id, kept.max_class = n, int(classes.max())
    build = time.perf_counter() - started
    print(
        f"build: {build:.1f} s, {kept.index.bytes_per_hash():.0f} bytes/hash, "
        f"{kept.index.memory_bytes() / 2**20:,.0f} MiB, radius {kept.radius}"
    )

    near_count = d // 100
    near_rows = rng.integers(0, n, near_count)
    delta = rng.integers(0, 256, (d, 32), dtype=np.uint8)
    delta[:near_count] = flipped(codes[near_rows], rng)
    rng.shuffle(delta)

    load_before = os.getloadavg()[0]
    started, cpu_started = time.perf_counter(), time.process_time()
    found = kept.search(delta, now=NOW, threads=threads)
    check = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    hits = sum(len(f) for f in found)
    print(
        f"check: {check:.1f} s for {d:,} hashes ({check / d * 1e6:.0f} us a hash), "
        f"{hits:,} candidate (kept, hash) pairs, peak RSS {peak_rss_mib():,.0f} MiB"
    )
    # The machine may be shared: CPU seconds and the load say how much of it the check had.
    print(
        f"check CPU: {cpu:.1f} s over {threads} threads ({cpu / check:.2f} cores busy on "
        f"average); load average before it {load_before:.1f}"
    )

    # The baseline: a brute-force scan of a sample, near hashes included, extrapolated to D.
    sample_rows = np.concatenate(
        [
            np.flatnonzero([len(f) > 0 for f in found])[: args.sample // 2],
            rng.integers(0, d, args.sample - args.sample // 2),
        ]
    )
    sample = delta[sample_rows]
    started = time.perf_counter()
    truth = brute_force(codes, alive, sample, kept.radius)
    per_query = (time.perf_counter() - started) / len(sample)
    baseline = per_query * d
    ours = [{i - 1 for i, _ in found[row]} for row in sample_rows]
    agree = sum(a == b for a, b in zip(ours, truth, strict=True))
    print(
        f"baseline (numpy brute force, {len(sample)} sampled, extrapolated): {baseline:,.0f} s "
        f"({per_query * 1e3:.0f} ms a hash); ratio {baseline / check:,.0f}x; "
        f"recall on the sample {agree}/{len(sample)} "
        f"({sum(len(t) for t in truth)} hits, expired rows left out)"
    )

    extra = 100_000
    new_ids = np.arange(n + 1, n + extra + 1, dtype=np.int64)
    new_codes = rng.integers(0, 256, (extra, 32), dtype=np.uint8)
    new_classes = np.full(extra, now_hour + 30 * 24, dtype=np.int64)
    started = time.perf_counter()
    kept.add_rows(new_ids, new_codes, new_classes)
    print(
        f"catch-up: {extra:,} new kept submissions added in {time.perf_counter() - started:.2f} s"
    )

    with tempfile.TemporaryDirectory(prefix="retroactive-bench-") as directory:
        kept.directory = Path(directory)
        started = time.perf_counter()
        kept.save()
        saved = time.perf_counter() - started
        started = time.perf_counter()
        loaded = KeptIndex.load("pdq", directory=Path(directory))
        load = time.perf_counter() - started
        print(f"snapshot: saved in {saved:.1f} s, loaded memory-mapped in {load:.2f} s")
        del loaded
    print(f"peak RSS: {peak_rss_mib():,.0f} MiB")
    goal = "within" if check <= 60 else "over"
    print(
        f"summary: N={n:,} D={d:,} check={check:.1f}s ({goal} the 60 s goal) "
        f"baseline={baseline:,.0f}s ratio={baseline / check:,.0f}x "
        f"peak_rss={peak_rss_mib():,.0f}MiB"
    )


if __name__ == "__main__":
    main()
