"""Bounded searches: a filter by holder class before any cap, a cap nearest first, and clusters of
near-duplicates set apart so that one list's cluster cannot cost every query its size."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from matching import index as index_module
from matching.index import HammingIndex
from tests.matching.test_index import (
    PDQ,
    PHASH,
    assert_same_as_brute_force,
    brute_force,
    flip_bits,
    queries_near,
)


def clustered(
    bits: int, *, clusters: int, per_cluster: int, most_flips: int, background: int, seed: int
) -> NDArray[np.uint8]:
    """Random background codes, then clusters whose members are their base with up to
    ``most_flips`` bits flipped (dense enough for the index to set them apart)."""
    rng = np.random.default_rng(seed)
    bases = rng.integers(0, 256, (clusters, bits // 8), dtype=np.uint8)
    members = flip_bits(
        np.repeat(bases, per_cluster, axis=0),
        rng.integers(0, most_flips + 1, clusters * per_cluster),
        rng,
    )
    noise = rng.integers(0, 256, (background, bits // 8), dtype=np.uint8)
    return np.concatenate([noise, members])


@pytest.fixture
def pdq_clusters() -> tuple[NDArray[np.int64], NDArray[np.uint8]]:
    codes = clustered(256, clusters=3, per_cluster=600, most_flips=8, background=3000, seed=21)
    # Distinct codes only, as the engine holds (one row per hash); the last is a cluster member.
    _, first = np.unique(codes, axis=0, return_index=True)
    codes = codes[np.sort(first)]
    ids = np.random.default_rng(22).permutation(len(codes)).astype(np.int64) + 100
    return ids, codes


def test_clusters_of_near_duplicates_are_set_apart_and_recall_stays_exact(
    pdq_clusters: tuple[NDArray[np.int64], NDArray[np.uint8]],
) -> None:
    ids, codes = pdq_clusters
    index = HammingIndex.build(ids, codes, **PDQ)
    queries = queries_near(codes, count=40, most_flips=31, seed=23)

    assert index.cluster_count >= 3
    # The multi-index keeps the background; the clusters' members live in the cluster block.
    assert sum(segment.rows for segment in index._segments) < len(codes) - 1500
    for radius in (0, 5, 16, 31):
        assert_same_as_brute_force(index, ids, codes, queries, radius)


def test_plain_random_codes_form_no_cluster() -> None:
    codes = np.random.default_rng(24).integers(0, 256, (20_000, 32), dtype=np.uint8)
    index = HammingIndex.build(np.arange(20_000), codes, **PDQ)

    assert index.cluster_count == 0


def test_a_crowded_chunk_without_near_duplicates_stays_in_the_multi_index() -> None:
    # Rows sharing their first chunk but random elsewhere are crowded, not close: grouping
    # them would only slow the search, so the bounded grouping leaves them be.
    rng = np.random.default_rng(25)
    codes = rng.integers(0, 256, (3000, 32), dtype=np.uint8)
    codes[:, :2] = 7
    ids = np.arange(3000, dtype=np.int64)
    index = HammingIndex.build(ids, codes, **PDQ)

    assert index.cluster_count == 0
    assert_same_as_brute_force(index, ids, codes, queries_near(codes, 10, 31, seed=26), 31)


def test_removals_and_adds_reach_clustered_rows_and_regrouping_keeps_recall(
    pdq_clusters: tuple[NDArray[np.int64], NDArray[np.uint8]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(index_module, "PENDING_LIMIT", 700)
    ids, codes = pdq_clusters
    index = HammingIndex.build(ids[:1000], codes[:1000], **PDQ)
    for start in range(1000, len(codes), 900):
        index.add(ids[start : start + 900], codes[start : start + 900])
    rng = np.random.default_rng(27)
    gone = rng.choice(ids, size=len(ids) // 2, replace=False)
    for batch in np.array_split(gone, 5):
        index.remove(batch)
    kept = ~np.isin(ids, gone)
    queries = queries_near(codes, count=30, most_flips=31, seed=28)

    assert len(index) == int(kept.sum())
    for radius in (3, 17, 31):
        assert_same_as_brute_force(index, ids[kept], codes[kept], queries, radius)


def test_a_bounded_search_keeps_the_nearest_rows_and_counts_them_all(
    pdq_clusters: tuple[NDArray[np.int64], NDArray[np.uint8]],
) -> None:
    ids, codes = pdq_clusters
    index = HammingIndex.build(ids, codes, **PDQ)
    query = codes[-1]

    (found,) = index.search_bounded(query, 31, limit=20)
    expected = sorted(brute_force(ids, codes, query, 31), key=lambda hit: (hit[1], hit[0]))

    assert len(expected) > 500
    assert found.hits == expected[:20]
    assert found.rows == found.total == len(expected)
    assert found.truncated


def test_the_filter_applies_before_the_cap_and_the_total_counts_weights(
    pdq_clusters: tuple[NDArray[np.int64], NDArray[np.uint8]],
) -> None:
    # Classes stand for "which lists hold the hash": the cluster's rows are class 1 (another
    # tenant's list), a few rows far from its centre class 2 (the caller's list, twice).
    ids, codes = pdq_clusters
    query = codes[-1]
    everything = brute_force(ids, codes, query, 31)
    by_id = dict(everything)
    farthest = sorted(everything, key=lambda hit: (-hit[1], hit[0]))[:5]
    classes = np.ones(len(ids), dtype=np.int32)
    mine = np.isin(ids, [hit_id for hit_id, _ in farthest])
    classes[mine] = 2
    index = HammingIndex.build(ids, codes, classes=classes, **PDQ)

    (found,) = index.search_bounded(query, 31, weights=[0, 0, 2], limit=3)

    expected = sorted(farthest, key=lambda hit: (hit[1], hit[0]))[:3]
    assert found.hits == expected
    assert all(by_id[hit_id] == distance for hit_id, distance in found.hits)
    assert found.rows == 5
    assert found.total == 10
    assert found.truncated


def test_a_cluster_held_only_by_classes_the_caller_may_not_see_is_not_scanned(
    pdq_clusters: tuple[NDArray[np.int64], NDArray[np.uint8]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ids, codes = pdq_clusters
    index = HammingIndex.build(ids, codes, classes=np.ones(len(ids), dtype=np.int32), **PDQ)
    scanned: list[int] = []
    original = index_module._slice_distances

    def counting(
        words: NDArray[np.uint64], start: int, end: int, query: NDArray[np.uint64]
    ) -> NDArray[np.integer[Any]]:
        scanned.append(end - start)
        return original(words, start, end, query)

    monkeypatch.setattr(index_module, "_slice_distances", counting)

    (hidden,) = index.search_bounded(codes[-1], 31, weights=[1, 0], limit=20)
    assert hidden.hits == [] and hidden.total == 0
    assert scanned == []

    (seen,) = index.search_bounded(codes[-1], 31, weights=[0, 1], limit=20)
    assert len(seen.hits) == 20
    assert sum(scanned) >= 500


@pytest.mark.parametrize("kind", [PDQ, PHASH], ids=["pdq", "phash"])
def test_a_snapshot_keeps_classes_and_clusters(kind: dict[str, int], tmp_path: Path) -> None:
    codes = np.unique(
        clustered(
            kind["bits"], clusters=2, per_cluster=700, most_flips=3, background=2000, seed=29
        ),
        axis=0,
    )
    ids = np.arange(len(codes), dtype=np.int64)
    classes = (ids % 3).astype(np.int32)
    index = HammingIndex.build(ids, codes, classes=classes, **kind)
    index.add([10**9], codes[:1], [2])
    index.save(tmp_path / "index")

    loaded = HammingIndex.load(tmp_path / "index")
    queries = queries_near(codes, count=20, most_flips=kind["max_radius"], seed=30)
    weights = [0, 1, 1]

    assert loaded.cluster_count == index.cluster_count
    assert loaded.search_bounded(queries, kind["max_radius"], weights=weights, limit=7) == (
        index.search_bounded(queries, kind["max_radius"], weights=weights, limit=7)
    )
