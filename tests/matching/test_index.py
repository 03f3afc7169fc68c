"""The Hamming index returns exactly what a brute-force scan returns, whatever happened before."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from matching import index as index_module
from matching.index import HammingIndex, Match

PDQ = {"bits": 256, "max_radius": 31}
PHASH = {"bits": 64, "max_radius": 10}


def flip_bits(
    codes: NDArray[np.uint8], counts: NDArray[np.int64], rng: np.random.Generator
) -> NDArray[np.uint8]:
    """Copies of the codes, each with its own number of distinct random bits flipped."""
    bits = np.unpackbits(codes, axis=1)
    for row, count in enumerate(counts):
        bits[row, rng.choice(bits.shape[1], size=int(count), replace=False)] ^= 1
    return np.packbits(bits, axis=1)


def planted(
    bits: int, clusters: int, per_cluster: int, most_flips: int, seed: int
) -> NDArray[np.uint8]:
    """Clusters of near-duplicates: each member is its base with 0..most_flips bits flipped.

    Uniform random codes are hundreds of bits apart, so without clusters nothing would sit near a
    radius boundary and recall would go untested.
    """
    rng = np.random.default_rng(seed)
    bases = rng.integers(0, 256, (clusters, bits // 8), dtype=np.uint8)
    members = np.repeat(bases, per_cluster, axis=0)
    return flip_bits(members, rng.integers(0, most_flips + 1, len(members)), rng)


def brute_force(
    ids: NDArray[np.int64], codes: NDArray[np.uint8], query: NDArray[np.uint8], radius: int
) -> list[Match]:
    distances = np.unpackbits(codes ^ query, axis=1).sum(axis=1)
    close = np.flatnonzero(distances <= radius)
    return sorted((int(ids[row]), int(distances[row])) for row in close)


def assert_same_as_brute_force(
    index: HammingIndex,
    ids: NDArray[np.int64],
    codes: NDArray[np.uint8],
    queries: NDArray[np.uint8],
    radius: int,
) -> None:
    results = index.search(queries, radius)
    assert len(results) == len(queries)
    for query, found in zip(queries, results, strict=True):
        assert sorted(found) == brute_force(ids, codes, query, radius)
        # Nearest first, ties by id.
        assert found == sorted(found, key=lambda match: (match[1], match[0]))


def queries_near(
    codes: NDArray[np.uint8], count: int, most_flips: int, seed: int
) -> NDArray[np.uint8]:
    rng = np.random.default_rng(seed)
    picked = codes[rng.choice(len(codes), size=count, replace=False)]
    return flip_bits(picked, rng.integers(0, most_flips + 1, count), rng)


@pytest.mark.parametrize(("kind", "most_flips"), [(PDQ, 31), (PHASH, 10)], ids=["pdq", "phash"])
def test_it_matches_brute_force_at_every_radius(kind: dict[str, int], most_flips: int) -> None:
    codes = planted(kind["bits"], clusters=60, per_cluster=40, most_flips=most_flips, seed=1)
    ids = np.arange(len(codes), dtype=np.int64) * 7 + 3
    index = HammingIndex.build(ids, codes, **kind)
    queries = queries_near(codes, count=30, most_flips=most_flips, seed=2)

    for radius in range(kind["max_radius"] + 1):
        assert_same_as_brute_force(index, ids, codes, queries, radius)


@pytest.mark.parametrize(("kind", "most_flips"), [(PDQ, 31), (PHASH, 10)], ids=["pdq", "phash"])
def test_it_matches_brute_force_after_adds_and_removals(
    kind: dict[str, int], most_flips: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A small pending limit makes a few thousand rows go through sealing, merging and compaction.
    monkeypatch.setattr(index_module, "PENDING_LIMIT", 50)
    rng = np.random.default_rng(3)
    codes = planted(kind["bits"], clusters=50, per_cluster=40, most_flips=most_flips, seed=4)
    ids = rng.permutation(len(codes)).astype(np.int64)
    index = HammingIndex.build(ids[:500], codes[:500], **kind)
    for start in range(500, len(codes), 137):
        index.add(ids[start : start + 137], codes[start : start + 137])
    for start in range(0, len(codes), 30):
        index.add(ids[start : start + 1], codes[start : start + 1])  # Leave a pending tail.
    all_ids = np.concatenate([ids, ids[::30]])
    all_codes = np.concatenate([codes, codes[::30]])
    gone = rng.choice(ids, size=len(ids) // 3, replace=False)
    for batch in np.array_split(gone, 7):
        index.remove(batch)
    kept = ~np.isin(all_ids, gone)
    queries = queries_near(codes, count=25, most_flips=most_flips, seed=5)

    assert len(index) == int(kept.sum())
    for radius in range(kind["max_radius"] + 1):
        assert_same_as_brute_force(index, all_ids[kept], all_codes[kept], queries, radius)


def test_an_empty_index_finds_nothing() -> None:
    index = HammingIndex(**PDQ)
    query = np.zeros((2, 32), dtype=np.uint8)

    assert index.search(query, 31) == [[], []]
    assert len(index) == 0


def test_an_index_emptied_by_removals_finds_nothing() -> None:
    codes = planted(256, clusters=3, per_cluster=4, most_flips=5, seed=6)
    index = HammingIndex.build(np.arange(12), codes, **PDQ)
    index.remove(np.arange(12))

    assert index.search(codes, 31) == [[]] * 12


def test_duplicate_codes_under_different_ids_are_all_returned() -> None:
    code = np.random.default_rng(7).integers(0, 256, (1, 32), dtype=np.uint8)
    index = HammingIndex.build([10, 20], np.repeat(code, 2, axis=0), **PDQ)
    index.add([5], code)

    assert index.search(code, 0) == [[(5, 0), (10, 0), (20, 0)]]


def test_a_query_batch_returns_one_list_per_query_in_order() -> None:
    codes = np.random.default_rng(8).integers(0, 256, (3, 32), dtype=np.uint8)
    index = HammingIndex.build([1, 2, 3], codes, **PDQ)

    assert index.search(codes[::-1], 0) == [[(3, 0)], [(2, 0)], [(1, 0)]]


def test_a_single_query_may_be_one_dimensional() -> None:
    codes = np.random.default_rng(9).integers(0, 256, (2, 8), dtype=np.uint8)
    index = HammingIndex.build([1, 2], codes, **PHASH)

    assert index.search(codes[1], 0) == [[(2, 0)]]


def test_removing_an_id_that_is_not_there_is_harmless() -> None:
    codes = np.random.default_rng(10).integers(0, 256, (3, 32), dtype=np.uint8)
    index = HammingIndex.build([1, 2, 3], codes, **PDQ)

    assert index.remove([99, -1]) == 0
    assert index.remove([]) == 0
    assert HammingIndex(**PDQ).remove([1]) == 0
    assert index.remove([2]) == 1
    assert index.remove([2]) == 0
    assert [len(found) for found in index.search(codes, 0)] == [1, 0, 1]


def test_removal_takes_effect_at_once_for_indexed_and_pending_rows() -> None:
    codes = np.random.default_rng(11).integers(0, 256, (2, 32), dtype=np.uint8)
    index = HammingIndex.build([1], codes[:1], **PDQ)
    index.add([2], codes[1:])  # Still in the brute-force tail.
    index.remove([1, 2])

    assert index.search(codes, 31) == [[], []]


def test_removing_an_id_drops_every_row_that_carries_it() -> None:
    codes = np.random.default_rng(12).integers(0, 256, (3, 32), dtype=np.uint8)
    index = HammingIndex.build([4, 4, 5], codes, **PDQ)

    assert index.remove([4]) == 2
    assert index.search(codes, 0) == [[], [], [(5, 0)]]


def test_it_rejects_a_radius_above_the_maximum() -> None:
    index = HammingIndex(**PHASH)

    with pytest.raises(ValueError, match="radius"):
        index.search(np.zeros((1, 8), dtype=np.uint8), 11)


def test_it_rejects_codes_of_the_wrong_length() -> None:
    index = HammingIndex(**PDQ)

    with pytest.raises(ValueError, match="shape"):
        index.add([1], np.zeros((1, 8), dtype=np.uint8))
    with pytest.raises(ValueError, match="shape"):
        index.search(np.zeros(64, dtype=np.uint8), 0)
    with pytest.raises(ValueError, match="uint8"):
        index.search(np.zeros((1, 32), dtype=np.int64), 0)


def test_memory_per_hash_counts_the_codes() -> None:
    codes = np.random.default_rng(13).integers(0, 256, (5000, 32), dtype=np.uint8)
    index = HammingIndex.build(np.arange(5000), codes, **PDQ)

    # 32 bytes of code, 4 of id, 4 of holder class, 8 of id order and 2 per chunk table but the
    # first at the least.
    assert index.bytes_per_hash() >= 32 + 4 + 4 + 8 + 15 * 2
    assert index.memory_bytes() == pytest.approx(index.bytes_per_hash() * 5000)


def test_a_built_index_holds_about_ninety_four_bytes_a_pdq_hash_besides_its_bucket_tables() -> None:
    # Above 65536 rows a table entry takes 3 bytes; the bucket offsets are a fixed 4 MiB, which
    # is 0.4 bytes a hash at 10M but dominates here, so they are left out of the figure.
    n = 70_000
    codes = np.random.default_rng(16).integers(0, 256, (n, 32), dtype=np.uint8)
    index = HammingIndex.build(np.arange(n), codes, **PDQ)
    (segment,) = index._segments

    per_row = (index.memory_bytes() - segment.offsets.nbytes) / n
    assert per_row == pytest.approx(32 + 4 + 4 + 8 + 15 * 3 + 1 / 8, abs=0.01)


def test_ids_beyond_32_bits_are_kept_whole() -> None:
    codes = np.random.default_rng(17).integers(0, 256, (3, 32), dtype=np.uint8)
    big = [1 << 40, -(1 << 35), 7]
    index = HammingIndex.build(big, codes, **PDQ)

    assert index.search(codes, 0) == [[(1 << 40, 0)], [(-(1 << 35), 0)], [(7, 0)]]
    assert index.remove([1 << 40]) == 1
    assert index.search(codes[:1], 0) == [[]]


@pytest.mark.parametrize("kind", [PDQ, PHASH], ids=["pdq", "phash"])
def test_it_finds_a_code_whose_differences_are_spread_evenly_over_the_chunks(
    kind: dict[str, int],
) -> None:
    # The pigeonhole's worst case: r flips dealt round-robin over the chunks, so no chunk is
    # closer than floor(r / m) and the earlier chunks carry one flip more.
    rng = np.random.default_rng(14)
    bits, chunk_count = kind["bits"], kind["bits"] // 16
    stored = rng.integers(0, 256, (1, bits // 8), dtype=np.uint8)
    index = HammingIndex.build([1], stored, **kind)
    for radius in range(kind["max_radius"] + 1):
        query = np.unpackbits(stored, axis=1)
        for flip in range(radius):
            query[0, (flip % chunk_count) * 16 + flip // chunk_count] ^= 1

        assert index.search(np.packbits(query, axis=1), radius) == [[(1, radius)]]
        if radius:
            assert index.search(np.packbits(query, axis=1), radius - 1) == [[]]


def test_the_exact_complement_is_as_far_as_can_be() -> None:
    # Rows not yet sealed into a segment are scanned in full, so the complement is verified too;
    # its distance of 256 must not wrap around to 0 in the packed popcount sum.
    code = np.random.default_rng(15).integers(0, 256, (1, 32), dtype=np.uint8)
    index = HammingIndex(**PDQ)
    index.add([1], code)

    assert index.search(~code, 31) == [[]]
    assert index.search(code, 0) == [[(1, 0)]]


@pytest.mark.parametrize("mmap", [True, False], ids=["mmap", "in_memory"])
@pytest.mark.parametrize(("kind", "most_flips"), [(PDQ, 31), (PHASH, 10)], ids=["pdq", "phash"])
def test_a_loaded_snapshot_matches_brute_force_after_adds_and_removals(
    kind: dict[str, int],
    most_flips: int,
    mmap: bool,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A small pending limit makes the loaded segments go through merging and compaction too.
    monkeypatch.setattr(index_module, "PENDING_LIMIT", 50)
    rng = np.random.default_rng(18)
    codes = planted(kind["bits"], clusters=50, per_cluster=40, most_flips=most_flips, seed=19)
    ids = rng.permutation(len(codes)).astype(np.int64)
    index = HammingIndex.build(ids[:1200], codes[:1200], **kind)
    index.add(ids[1200:1500], codes[1200:1500])  # A second segment and a pending tail.
    index.add(ids[1500:1520], codes[1500:1520])
    index.remove(ids[:100:7])
    queries = queries_near(codes, count=25, most_flips=most_flips, seed=20)
    index.save(tmp_path / "pdq")

    loaded = HammingIndex.load(tmp_path / "pdq", mmap=mmap, bits=kind["bits"])

    assert len(loaded) == len(index)
    assert loaded.segment_count == index.segment_count
    assert loaded.memory_bytes() == index.memory_bytes()
    for radius in range(kind["max_radius"] + 1):
        assert loaded.search(queries, radius) == index.search(queries, radius)

    for start in range(1520, len(codes), 97):
        loaded.add(ids[start : start + 97], codes[start : start + 97])
    gone = np.concatenate([ids[:100:7], rng.choice(ids, size=len(ids) // 3, replace=False)])
    for batch in np.array_split(gone, 5):
        loaded.remove(batch)
    kept = ~np.isin(ids, gone)

    assert len(loaded) == int(kept.sum())
    for radius in range(kind["max_radius"] + 1):
        assert_same_as_brute_force(loaded, ids[kept], codes[kept], queries, radius)


def test_a_loaded_snapshot_is_memory_mapped_and_stays_so_through_adds_and_removals(
    tmp_path: Path,
) -> None:
    codes = planted(256, clusters=40, per_cluster=50, most_flips=31, seed=21)
    ids = np.arange(len(codes), dtype=np.int64) + 1000
    HammingIndex.build(ids, codes, **PDQ).save(tmp_path / "pdq")
    saved = {path.name: path.read_bytes() for path in (tmp_path / "pdq").iterdir()}

    loaded = HammingIndex.load(tmp_path / "pdq")
    (base,) = loaded._segments
    mapped = [base.codes, base.ids, base.id_rows, base.order_lo, base.offsets]
    loaded.add([1], codes[:1])
    loaded.remove(ids[:10])

    assert all(isinstance(array, np.memmap) for array in mapped)
    assert not any(array.flags.writeable for array in mapped)
    # The base segment is the same mapped one, its live bits a private copy.
    assert loaded._segments[0] is base
    assert not isinstance(base.live, np.memmap)
    assert loaded.search(codes[:2], 0) == [[(1, 0)], []]
    assert {path.name: path.read_bytes() for path in (tmp_path / "pdq").iterdir()} == saved


def test_an_empty_index_survives_a_snapshot(tmp_path: Path) -> None:
    HammingIndex(**PHASH).save(tmp_path / "phash")

    loaded = HammingIndex.load(tmp_path / "phash")

    assert len(loaded) == 0
    assert loaded.search(np.zeros((1, 8), dtype=np.uint8), 10) == [[]]


def test_saving_again_replaces_the_snapshot_atomically(tmp_path: Path) -> None:
    codes = np.random.default_rng(22).integers(0, 256, (4, 32), dtype=np.uint8)
    first = HammingIndex.build([1, 2], codes[:2], **PDQ)
    first.save(tmp_path / "pdq")
    reader = HammingIndex.load(tmp_path / "pdq")

    for extra in range(3):
        HammingIndex.build([1, 2, 3 + extra], codes[:3], **PDQ).save(tmp_path / "pdq")

    # The published name is a symlink swapped by one rename; the newest two versions are kept,
    # and a process that mapped an older one still reads it (the pages outlive the files).
    assert (tmp_path / "pdq").is_symlink()
    assert len(list(tmp_path.glob(".pdq.v*"))) == 2
    assert not list(tmp_path.glob(".pdq.tmp-*"))
    assert HammingIndex.load(tmp_path / "pdq").search(codes[2], 0) == [[(5, 0)]]
    assert reader.search(codes[:3], 0) == [[(1, 0)], [(2, 0)], []]


def test_saving_over_a_plain_directory_replaces_it(tmp_path: Path) -> None:
    (tmp_path / "pdq").mkdir()
    (tmp_path / "pdq" / "stale.npy").write_bytes(b"old")
    code = np.random.default_rng(23).integers(0, 256, (1, 32), dtype=np.uint8)

    HammingIndex.build([9], code, **PDQ).save(tmp_path / "pdq")

    assert HammingIndex.load(tmp_path / "pdq").search(code, 0) == [[(9, 0)]]


def snapshot(tmp_path: Path) -> Path:
    codes = np.random.default_rng(24).integers(0, 256, (300, 32), dtype=np.uint8)
    HammingIndex.build(np.arange(300), codes, **PDQ).save(tmp_path / "pdq")
    return (tmp_path / "pdq").resolve()


def test_a_snapshot_of_other_codes_is_refused(tmp_path: Path) -> None:
    directory = snapshot(tmp_path)

    with pytest.raises(ValueError, match="256-bit codes, expected 64"):
        HammingIndex.load(directory, bits=64)


def test_a_missing_snapshot_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unusable"):
        HammingIndex.load(tmp_path / "nothing")


def test_a_snapshot_missing_a_file_is_refused(tmp_path: Path) -> None:
    directory = snapshot(tmp_path)
    (directory / "segment-0.order_lo.npy").unlink()

    with pytest.raises(ValueError, match="unusable"):
        HammingIndex.load(directory)


@pytest.mark.parametrize("mmap", [True, False], ids=["mmap", "in_memory"])
def test_a_truncated_array_is_refused(tmp_path: Path, mmap: bool) -> None:
    directory = snapshot(tmp_path)
    path = directory / "segment-0.codes.npy"
    path.write_bytes(path.read_bytes()[:-32])

    with pytest.raises(ValueError, match="unusable"):
        HammingIndex.load(directory, mmap=mmap)


def test_a_truncated_array_is_refused_even_with_a_matching_manifest(tmp_path: Path) -> None:
    # Rewrite the manifest's byte count too: the array's own header must still give it away.
    directory = snapshot(tmp_path)
    path = directory / "segment-0.codes.npy"
    path.write_bytes(path.read_bytes()[:-32])
    manifest = json.loads((directory / "manifest.json").read_text())
    manifest["segments"][0]["arrays"]["codes"]["bytes"] = path.stat().st_size
    (directory / "manifest.json").write_text(json.dumps(manifest))

    with pytest.raises(ValueError, match="unusable"):
        HammingIndex.load(directory)


def test_an_array_of_the_wrong_shape_is_refused(tmp_path: Path) -> None:
    directory = snapshot(tmp_path)
    np.save(directory / "segment-0.ids.npy", np.arange(299, dtype=np.int32))
    manifest = json.loads((directory / "manifest.json").read_text())
    described = manifest["segments"][0]["arrays"]["ids"]
    described.update(shape=[299], bytes=(directory / "segment-0.ids.npy").stat().st_size)
    (directory / "manifest.json").write_text(json.dumps(manifest))

    with pytest.raises(ValueError, match="shape"):
        HammingIndex.load(directory)


@pytest.mark.parametrize("text", ["{", "[]", '{"format": "something else"}'])
def test_a_corrupt_manifest_is_refused(tmp_path: Path, text: str) -> None:
    directory = snapshot(tmp_path)
    (directory / "manifest.json").write_text(text)

    with pytest.raises(ValueError, match="unusable"):
        HammingIndex.load(directory)
