"""An in-memory Hamming index with exact recall for perceptual hashes (PDQ, pHash).

Multi-index hashing
-------------------
Each code of ``bits`` bits is cut into ``m = bits / 16`` chunks of 16 bits (PDQ: 16 chunks,
pHash: 4). For every chunk the index keeps the row numbers sorted by that chunk's value, with
CSR-style bucket offsets, so the rows whose chunk ``j`` equals a value are one contiguous slice.

Why recall is exact (the pigeonhole principle): write the radius as ``r = s * m + a`` with
``0 <= a < m``. If a stored code is within ``r`` of the query, then either one of the first
``a + 1`` chunks differs from the query's by at most ``s`` bits, or one of the other ``m - a - 1``
chunks differs by at most ``s - 1`` bits. Otherwise the total distance would be at least
``(a + 1)(s + 1) + (m - a - 1) s = r + 1``. So a search probes, in the first ``a + 1`` chunks, every
16-bit value within ``s`` bits of the query's chunk, and in the others every value within ``s - 1``
bits (none when ``s = 0``); it gathers those buckets' rows and verifies each candidate with a full
popcount. Nothing within the radius can be missed and nothing outside it is returned. This is a
tighter form of the plain "within floor(r/m) bits on some chunk" rule of multi-index hashing
(Norouzi et al., "Fast Search in Hamming Space with Multi-Index Hashing", CVPR 2012): it never
probes more buckets and often far fewer, e.g. PDQ at r = 16 probes 17 + 15 buckets, not 16 * 17.
At r = 31 the two coincide.

Why 16-bit chunks: a 16-bit chunk gives 65536 buckets, so at 10M PDQ hashes a bucket holds about
150 rows and a radius-31 query (s = 1: 17 probes in each of 16 chunks) verifies about 40k
candidates (about 1.5 ms on one core, most of it fetching the candidates' codes from memory),
while the per-chunk tables cost only 4 bytes a row. 8-bit chunks would mean 32 chunks at s = 0
with buckets of 40k rows (over a million candidates); 32-bit chunks (8 of them) give s = 3 at
r = 31, about 5500 probes per chunk into a table too large to bucket directly. For pHash (4
chunks) r = 10 gives s = 2, a = 2: 137 probes in each of three chunks and 17 in the fourth.

Updates
-------
Rows live in append-only arrays (codes, ids, a live mask). The multi-index is a short list of
immutable *segments*, each covering a contiguous range of rows, like a log-structured merge tree:
new rows wait in a small pending tail that is scanned by brute force, are sealed into a segment
once the tail is long enough, and neighbouring segments are merged while the younger one is at
least half the size of the older, so there are O(log N) segments and each row is re-indexed O(log N)
times. A small segment uses fewer buckets (the chunk's high bits) so that its offset tables stay
proportionate; a bucket then holds a few more values, which only adds candidates to verify.

``remove`` clears the live bit at once, so removals take effect immediately; dead rows are skipped
during verification and dropped by a full rebuild once they are a quarter of the index.

Searches only read, so several may run at once; the caller serialises ``add`` and ``remove``
against everything else.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

CHUNK_BITS = 16
"""Bits per chunk; 16 keeps a full bucket table at 65536 entries per chunk."""

PENDING_LIMIT = 4096
"""Rows scanned by brute force before they are sealed into a segment (128 KiB of PDQ codes)."""

_MIN_BUCKET_BITS = 8
_INITIAL_CAPACITY = 1024

Match = tuple[int, int]
"""One search hit: (id, Hamming distance)."""


def _masks_within(flips: int) -> NDArray[np.uint16]:
    """Every 16-bit XOR mask with at most ``flips`` bits set, fewest bits first."""
    values = np.arange(1 << CHUNK_BITS, dtype=np.uint32)
    weights = np.bitwise_count(values)
    chosen = values[weights <= flips]
    # Sorting by weight is not needed for correctness; it keeps the probe order predictable.
    return chosen[np.argsort(weights[chosen], kind="stable")].astype(np.uint16)


def _chunks(codes: NDArray[np.uint8]) -> NDArray[np.uint16]:
    """The 16-bit chunks of each code, as an [N, m] array of native integers."""
    return np.ascontiguousarray(codes).view(">u2").astype(np.uint16)


def _expand_ranges(starts: NDArray[np.int64], ends: NDArray[np.int64]) -> NDArray[np.int64]:
    """All integers in the half-open ranges [starts[i], ends[i]), concatenated, without a loop."""
    lengths = ends - starts
    total = int(lengths.sum())
    if total == 0:
        return np.empty(0, dtype=np.int64)
    before = np.cumsum(lengths) - lengths
    return np.arange(total, dtype=np.int64) + np.repeat(starts - before, lengths)


def _row_sums(counts: NDArray[np.uint8]) -> NDArray[np.int64]:
    """Each row's total of per-word popcounts (each at most 64): the Hamming distances.

    ``.sum(axis=1)`` on rows this short spends its time in per-row overhead, which was a large part
    of a search at 10M, so PDQ's shape takes a faster path.
    """
    if counts.shape[1] == 4:
        # PDQ: read the four counts as one uint32; multiplying by 0x01010101 adds them into the
        # top byte (the lower bytes hold partial sums of at most 192, so nothing carries into
        # it). The total overflows the byte only when all four are 64, the exact complement.
        packed = counts.view(np.uint32).ravel()
        sums = ((packed * np.uint32(0x01010101)) >> 24).astype(np.int64)
        sums[packed == 0x40404040] = 256
        return sums
    sums = counts[:, 0].astype(np.int64)
    for column in range(1, counts.shape[1]):
        sums += counts[:, column]
    return sums


@dataclass(frozen=True)
class _Segment:
    """An immutable multi-index over rows [start, end) plus an id lookup table for removals."""

    start: int
    end: int
    shift: int  # Chunk values are bucketed by their top (16 - shift) bits.
    order: NDArray[np.uint32]  # [m, n]: local rows sorted by bucket, one row per chunk.
    offsets: NDArray[np.int32]  # [m, buckets + 1]: where each bucket starts in ``order``.
    sorted_ids: NDArray[np.int64]  # The segment's ids, sorted, for ``remove``.
    id_rows: NDArray[np.uint32]  # Local row of each entry in ``sorted_ids``.

    @property
    def rows(self) -> int:
        return self.end - self.start

    @property
    def nbytes(self) -> int:
        return (
            self.order.nbytes + self.offsets.nbytes + self.sorted_ids.nbytes + self.id_rows.nbytes
        )

    @classmethod
    def build(cls, start: int, codes: NDArray[np.uint8], ids: NDArray[np.int64]) -> _Segment:
        n = len(codes)
        chunks = _chunks(codes)
        # One bucket per two to four rows, capped at the full 16 bits, so a small segment does not
        # carry a 256 KiB offset table per chunk.
        bucket_bits = min(CHUNK_BITS, max(_MIN_BUCKET_BITS, int(n).bit_length() - 2))
        shift = CHUNK_BITS - bucket_bits
        buckets = 1 << bucket_bits
        m = chunks.shape[1]
        order = np.empty((m, n), dtype=np.uint32)
        offsets = np.zeros((m, buckets + 1), dtype=np.int32)
        for j in range(m):
            keys = chunks[:, j] >> shift
            # A stable sort on uint16 keys is a radix sort in numpy: linear in n.
            order[j] = np.argsort(keys, kind="stable")
            np.cumsum(np.bincount(keys, minlength=buckets), out=offsets[j, 1:])
        id_order = np.argsort(ids, kind="stable")
        return cls(
            start=start,
            end=start + n,
            shift=shift,
            order=order,
            offsets=offsets,
            sorted_ids=ids[id_order],
            id_rows=id_order.astype(np.uint32),
        )

    def candidates(
        self,
        probes: Sequence[tuple[NDArray[np.intp], NDArray[np.uint16]]],
        query_chunks: NDArray[np.uint16],
    ) -> NDArray[np.int64]:
        """Global rows in the buckets that the probes select (with repeats; the caller verifies).

        Each probe group is (chunk numbers, XOR masks): every listed chunk is probed with every
        mask.
        """
        n = self.rows
        found: list[NDArray[np.int64]] = []
        for chunk_numbers, masks in probes:
            values = query_chunks[chunk_numbers][:, None] ^ masks[None, :]
            buckets = (values >> self.shift).astype(np.int64)
            if self.shift:
                # Coarser buckets make several masks land in the same bucket; probe each once.
                keys = np.unique(chunk_numbers[:, None].astype(np.int64) << CHUNK_BITS | buckets)
                chunk_of = keys >> CHUNK_BITS
                buckets = keys & ((1 << CHUNK_BITS) - 1)
            else:
                chunk_of = np.repeat(chunk_numbers, masks.size).astype(np.int64)
                buckets = buckets.ravel()
            starts = self.offsets[chunk_of, buckets].astype(np.int64)
            ends = self.offsets[chunk_of, buckets + 1].astype(np.int64)
            base = chunk_of * n
            positions = _expand_ranges(starts + base, ends + base)
            found.append(np.take(self.order.ravel(), positions).astype(np.int64))
        if not found:
            return np.empty(0, dtype=np.int64)
        return np.concatenate(found) + self.start

    def rows_with_ids(self, ids: NDArray[np.int64]) -> NDArray[np.int64]:
        lo = np.searchsorted(self.sorted_ids, ids, side="left")
        hi = np.searchsorted(self.sorted_ids, ids, side="right")
        return self.id_rows[_expand_ranges(lo, hi)].astype(np.int64) + self.start


class HammingIndex:
    """Exact-recall radius search over fixed-length binary codes (see the module docstring).

    ``bits`` must be a multiple of 16 and of 64 (PDQ: 256, pHash: 64). ``max_radius`` is the
    largest radius a search may ask for (PDQ: 31, pHash: 10). Ids are int64 and need not be
    unique: the index is a multiset, and ``remove`` drops every row carrying a given id.
    """

    def __init__(self, *, bits: int, max_radius: int) -> None:
        if bits <= 0 or bits % 64:
            raise ValueError(f"bits must be a positive multiple of 64, not {bits}.")
        if not 0 <= max_radius <= bits:
            raise ValueError(f"max_radius must be between 0 and {bits}, not {max_radius}.")
        self.bits = bits
        self.max_radius = max_radius
        self.code_bytes = bits // 8
        self.chunk_count = bits // CHUNK_BITS
        self._masks = [_masks_within(flips) for flips in range(max_radius // self.chunk_count + 1)]
        self._empty()

    def _empty(self) -> None:
        self._codes = np.zeros((_INITIAL_CAPACITY, self.code_bytes), dtype=np.uint8)
        self._ids = np.zeros(_INITIAL_CAPACITY, dtype=np.int64)
        self._alive = np.zeros(_INITIAL_CAPACITY, dtype=bool)
        self._rows = 0
        self._dead = 0
        self._segments: list[_Segment] = []

    @classmethod
    def build(cls, ids: ArrayLike, codes: ArrayLike, *, bits: int, max_radius: int) -> HammingIndex:
        """An index holding the given rows, indexed in one segment (the fast path for a load)."""
        index = cls(bits=bits, max_radius=max_radius)
        index.add(ids, codes)
        index._seal()
        return index

    def __len__(self) -> int:
        """The number of live rows."""
        return self._rows - self._dead

    @property
    def segment_count(self) -> int:
        """How many segments a search probes (O(log N) after incremental adds)."""
        return len(self._segments)

    def memory_bytes(self) -> int:
        """Bytes held by the index's arrays: codes, ids, live mask and every segment's tables."""
        arrays = self._codes.nbytes + self._ids.nbytes + self._alive.nbytes
        return arrays + sum(segment.nbytes for segment in self._segments)

    def bytes_per_hash(self) -> float:
        """``memory_bytes`` divided by the live rows (spare capacity included, so it is honest)."""
        return self.memory_bytes() / max(len(self), 1)

    def add(self, ids: ArrayLike, codes: ArrayLike) -> None:
        """Append rows; they are searchable as soon as this returns."""
        id_array = np.asarray(ids, dtype=np.int64).reshape(-1)
        code_array = self._check_codes(codes)
        if len(id_array) != len(code_array):
            raise ValueError(f"{len(id_array)} ids but {len(code_array)} codes.")
        count = len(id_array)
        if count == 0:
            return
        self._reserve(self._rows + count)
        self._codes[self._rows : self._rows + count] = code_array
        self._ids[self._rows : self._rows + count] = id_array
        self._alive[self._rows : self._rows + count] = True
        self._rows += count
        if self._rows - self._indexed_rows() >= PENDING_LIMIT:
            self._seal()

    def remove(self, ids: ArrayLike) -> int:
        """Drop every row carrying one of the ids, at once; unknown ids are ignored.

        Returns how many live rows were removed. May compact the whole index when dead rows reach
        a quarter of it, which costs about as much as a build.
        """
        wanted = np.unique(np.asarray(ids, dtype=np.int64).reshape(-1))
        if wanted.size == 0 or self._rows == 0:
            return 0
        found = [segment.rows_with_ids(wanted) for segment in self._segments]
        tail = self._indexed_rows()
        in_tail = np.isin(self._ids[tail : self._rows], wanted)
        found.append(np.flatnonzero(in_tail).astype(np.int64) + tail)
        rows = np.concatenate(found)
        rows = rows[self._alive[rows]]
        self._alive[rows] = False
        self._dead += len(rows)
        if self._dead > max(PENDING_LIMIT, self._rows // 4):
            self._compact()
        return len(rows)

    def search(self, query_codes: ArrayLike, radius: int) -> list[list[Match]]:
        """For each query, every live (id, distance) within ``radius``, nearest first then by id."""
        if not 0 <= radius <= self.max_radius:
            raise ValueError(f"radius must be between 0 and {self.max_radius}, not {radius}.")
        queries = self._check_codes(query_codes)
        probes = self._probes(radius)
        return [self._search_one(query, radius, probes) for query in queries]

    def _search_one(
        self,
        query: NDArray[np.uint8],
        radius: int,
        probes: Sequence[tuple[NDArray[np.intp], NDArray[np.uint16]]],
    ) -> list[Match]:
        if self._rows == 0:
            return []
        query_chunks = _chunks(query[None, :])[0]
        found = [segment.candidates(probes, query_chunks) for segment in self._segments]
        found.append(np.arange(self._indexed_rows(), self._rows, dtype=np.int64))
        rows = np.concatenate(found)
        # This is the inner loop of a search. np.take is several times faster than fancy indexing,
        # and a column at a time twice as fast as broadcasting the query over rows of four words.
        words = np.take(self._codes.view(np.uint64), rows, axis=0)
        for column, query_word in enumerate(query.view(np.uint64)):
            words[:, column] ^= query_word
        distances = _row_sums(np.bitwise_count(words))
        # Checking the live bit only for the few rows in range saves a random read per candidate.
        close = np.flatnonzero(distances <= radius)
        close = close[self._alive[rows[close]]]
        # A row can be a candidate through several chunks; keep it once.
        hits = np.unique(rows[close], return_index=True)
        distances = distances[close][hits[1]]
        ids = self._ids[hits[0]]
        by_distance = np.lexsort((ids, distances))
        return list(zip(ids[by_distance].tolist(), distances[by_distance].tolist(), strict=True))

    def _probes(self, radius: int) -> list[tuple[NDArray[np.intp], NDArray[np.uint16]]]:
        """The (chunks, masks) groups that cover ``radius`` by the pigeonhole rule."""
        flips, spare = divmod(radius, self.chunk_count)
        groups = [(np.arange(spare + 1), self._masks[flips])]
        if flips > 0 and spare + 1 < self.chunk_count:
            groups.append((np.arange(spare + 1, self.chunk_count), self._masks[flips - 1]))
        return groups

    def _check_codes(self, codes: ArrayLike) -> NDArray[np.uint8]:
        array = np.asarray(codes)
        if array.dtype != np.uint8:
            raise ValueError(f"codes must be uint8, not {array.dtype}.")
        # A one-dimensional array is one code, so that a single query needs no wrapping.
        array = array[None, :] if array.ndim == 1 else array
        if array.ndim != 2 or array.shape[1] != self.code_bytes:
            raise ValueError(f"codes must have shape [N, {self.code_bytes}], not {array.shape}.")
        # The uint64 view used for popcounts needs contiguous rows.
        return np.ascontiguousarray(array)

    def _indexed_rows(self) -> int:
        return self._segments[-1].end if self._segments else 0

    def _reserve(self, rows: int) -> None:
        capacity = len(self._ids)
        if rows <= capacity:
            return
        # Grow by half again, like a list, but jump straight to the size a bulk add needs.
        capacity = max(rows, capacity + capacity // 2)
        codes = np.zeros((capacity, self.code_bytes), dtype=np.uint8)
        codes[: self._rows] = self._codes[: self._rows]
        ids = np.zeros(capacity, dtype=np.int64)
        ids[: self._rows] = self._ids[: self._rows]
        alive = np.zeros(capacity, dtype=bool)
        alive[: self._rows] = self._alive[: self._rows]
        self._codes, self._ids, self._alive = codes, ids, alive

    def _seal(self) -> None:
        """Index the pending tail as a segment, then merge segments of similar size."""
        start = self._indexed_rows()
        if start < self._rows:
            self._segments.append(self._segment(start, self._rows))
        while len(self._segments) >= 2 and self._segments[-2].rows <= 2 * self._segments[-1].rows:
            younger = self._segments.pop()
            older = self._segments.pop()
            self._segments.append(self._segment(older.start, younger.end))

    def _segment(self, start: int, end: int) -> _Segment:
        return _Segment.build(start, self._codes[start:end], self._ids[start:end])

    def _compact(self) -> None:
        """Rebuild from the live rows only, dropping the dead ones."""
        live = np.flatnonzero(self._alive[: self._rows])
        codes, ids = self._codes[live].copy(), self._ids[live].copy()
        self._empty()
        self.add(ids, codes)
        self._seal()
