"""An in-memory Hamming index with exact recall for perceptual hashes (PDQ, pHash).

Multi-index hashing
-------------------
Each code of ``bits`` bits is cut into ``m = bits / 16`` chunks of 16 bits (PDQ: 16 chunks,
pHash: 4). For every chunk the index can list, as one contiguous slice, the rows whose chunk ``j``
falls in a given bucket: CSR-style bucket offsets over the rows sorted by that chunk's value.

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
candidates, while the per-chunk tables cost 3 bytes a row. 8-bit chunks would mean 32 chunks at
s = 0 with buckets of 40k rows (over a million candidates); 32-bit chunks (8 of them) give s = 3
at r = 31, about 5500 probes per chunk into a table too large to bucket directly. For pHash (4
chunks) r = 10 gives s = 2, a = 2: 137 probes in each of three chunks and 17 in the fourth.

Memory layout of a segment (about 94 bytes per PDQ hash at 10M, codes included)
-------------------------------------------------------------------------------
- The rows are stored physically sorted by chunk 0, so chunk 0 needs no table at all: its
  buckets are row ranges, and its candidates are read from contiguous memory.
- Each other chunk's table holds row numbers in 3 bytes (a uint16 low part and a uint8 high part;
  a segment of at most 65536 rows needs only the low part, one of more than 2**24 rows a uint16
  high part).
- Ids are int32 when every id of the segment fits, int64 otherwise; ``id_rows`` (the rows in id
  order, 8 bytes) lets ``remove`` binary-search the ids with ``np.searchsorted(sorter=...)``.
- Each row's holder class is an int32 (4 bytes), in row order like the ids.
- The live flags are a bitset (one bit a row).

Verification reads only the first half of each candidate's code first (128 bits for PDQ: a random
code is then 64 +- 6 bits away, so almost every candidate is rejected there), and the whole code
only for the few that pass. The candidate fetches are random reads from a 320 MB array at 10M and
dominate a search; halving the bytes each one copies and scans is what keeps p99 under 2 ms.

Filters and caps
----------------
A bounded search (``search_bounded``) weighs each row by its class and keeps only rows of
positive weight, then keeps the ``limit`` nearest of those and reports how many there were and
their total weight. The filter comes first, so rows the caller may not see can neither take the
places of its own nor show in the count.

Clusters
--------
A cluster of near-duplicates (tens of thousands of codes within a few bits of each other, which
any tenant can build) agrees with a query near it on most chunks, so the multi-index would list
each member once per agreeing chunk: 50,000 members made 800,000 candidates and 34 ms at 1M
rows, to keep twenty. Building a segment therefore looks for crowded chunk values (more rows
than ``DENSE_BUCKET_ROWS`` and 16 times the average), and groups their rows around leaders:
the rows within ``CLUSTER_RADIUS`` of a leader become one group if there are at least
``CLUSTER_MIN_ROWS``. Groups live in a *cluster block* beside the segments, each group's rows
contiguous and sorted by their distance to the group's centre (the bitwise majority of its
members). A search computes one distance per centre, skips a group when the centre is farther
than the radius plus the group's own radius (no member can be in range: the triangle
inequality) or when none of the group's classes weighs anything to the caller (another
tenant's cluster costs it nothing), and otherwise scans, in one contiguous pass, the members
whose distance to the centre is within the radius of the query's; a query beside a cluster
skips most of it. Recall stays exact. Grouping tries at most ``CLUSTER_ATTEMPTS`` leaders, so
rows that are crowded on a chunk without being close cost a bounded build and stay in the
multi-index.

Updates
-------
The index is a short list of immutable *segments*, each with its own codes, ids and tables, like
a log-structured merge tree: new rows wait in a small pending tail that is scanned by brute force,
are sealed into a segment once the tail is long enough, and neighbouring segments are merged while
the younger one is at least half the size of the older, so there are O(log N) segments and each
row is re-indexed O(log N) times. A small segment uses fewer buckets (the chunk's high bits) so
that its offset tables stay proportionate; a bucket then holds a few more values, which only adds
candidates to verify.

``remove`` clears the row's live bit at once, so removals take effect immediately; dead rows are
skipped during verification, left out whenever their segment is merged, and a segment is rebuilt
without them once they are a quarter of it.

Snapshots
---------
``save`` writes every segment's arrays as ``.npy`` files plus a JSON manifest into a fresh
directory next to the target, then publishes it by atomically replacing a symlink, so a reader
sees the old snapshot or the new one, never half of one. ``load`` memory-maps the arrays
read-only, so every worker process shares one copy of the pages; only the live bitsets are private
copies. The loaded segments stay immutable: new rows go to the tail and to new segments, and
removals only touch the private bitsets, so nothing big is copied until a merge or a compaction
rebuilds a segment (which then lives in private memory).

Searches only read, so several may run at once; the caller serialises ``add`` and ``remove``
against everything else.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

CHUNK_BITS = 16
"""Bits per chunk; 16 keeps a full bucket table at 65536 entries per chunk."""

PENDING_LIMIT = 4096
"""Rows scanned by brute force before they are sealed into a segment (128 KiB of PDQ codes)."""

SNAPSHOT_FORMAT = "hashhub-hamming-index"
SNAPSHOT_VERSION = 2
MANIFEST_NAME = "manifest.json"

DENSE_BUCKET_ROWS = 256
"""A chunk value shared by more rows than this (and 16 times the average) marks its rows as
possibly clustered (see "Clusters" in the module docstring)."""

CLUSTER_RADIUS = 20
"""The most bits a cluster member may differ from its leader."""

CLUSTER_MIN_ROWS = 64
"""Fewer rows than this within ``CLUSTER_RADIUS`` of a leader are left in the multi-index."""

CLUSTER_ATTEMPTS = 64
"""Leaders tried per build: bounds the grouping work whatever the rows look like."""

CLUSTER_BLOCKS_MAX = 4
"""Cluster blocks kept side by side before they are regrouped into one."""

_MIN_BUCKET_BITS = 8
_INT32 = np.iinfo(np.int32)
_SEGMENT_ARRAYS = ("codes", "ids", "classes", "id_rows", "order_lo", "order_hi", "offsets", "live")
_CLUSTER_ARRAYS = (
    *("codes", "ids", "classes", "id_rows", "live"),
    *("starts", "centres", "to_centre", "radius", "group_classes"),
)
_KEPT_VERSIONS = 2
"""Published snapshot versions kept: the newest, and the one a slow reader may still be opening."""

Match = tuple[int, int]
"""One search hit: (id, Hamming distance)."""


@dataclass(frozen=True)
class Found:
    """What a bounded search found for one query: the nearest ``limit`` allowed rows, nearest
    first then by id, and the total weight of every allowed live row within the radius."""

    hits: list[Match]
    rows: int  # allowed live rows within the radius (``hits`` holds at most ``limit`` of them)
    total: int  # their total weight: with holder classes as weights, the matches they make

    @property
    def truncated(self) -> bool:
        return self.rows > len(self.hits)


_Rows3 = tuple[NDArray[np.signedinteger[Any]], NDArray[np.integer[Any]], NDArray[np.int32]]
"""The ids, distances and holder classes of some live rows within a search's radius."""

_Buckets = tuple[NDArray[np.int64], NDArray[np.uint16], int]
"""Chunk number and XOR mask of each probe (chunk 0's first), and how many probe chunk 0."""


class _Probes:
    """The probes of one radius, and their bucket-level form for each bucket width (cached).

    A segment that buckets chunk values by their top bits only (``value >> shift``) needs one
    probe per distinct ``mask >> shift``: ``(value ^ mask) >> shift`` is
    ``(value >> shift) ^ (mask >> shift)``, so masks that differ only in the dropped bits land in
    the same bucket whatever the query. Working that out once per width, rather than
    deduplicating buckets per query, keeps a small segment's search as cheap as it should be.
    """

    def __init__(self, chunk_of: NDArray[np.int64], masks: NDArray[np.uint16], first: int) -> None:
        self._by_shift: dict[int, _Buckets] = {0: (chunk_of, masks, first)}

    def at(self, shift: int) -> _Buckets:
        cached = self._by_shift.get(shift)
        if cached is None:
            chunk_of, masks, _ = self._by_shift[0]
            keys = np.unique(chunk_of << CHUNK_BITS | (masks >> shift).astype(np.int64))
            chunk_of = keys >> CHUNK_BITS
            masks = (keys & ((1 << CHUNK_BITS) - 1)).astype(np.uint16)
            cached = (chunk_of, masks, int(np.searchsorted(chunk_of, 1)))
            self._by_shift[shift] = cached
        return cached


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


def _chunk(codes: NDArray[np.uint8], number: int) -> NDArray[np.uint16]:
    """Chunk ``number`` of each code, as native integers (a column of ``_chunks``)."""
    return codes[:, 2 * number : 2 * number + 2].view(">u2").astype(np.uint16).ravel()


def _expand_ranges(starts: NDArray[np.int64], ends: NDArray[np.int64]) -> NDArray[np.int64]:
    """All integers in the half-open ranges [starts[i], ends[i]), concatenated, without a loop."""
    lengths = ends - starts
    total = int(lengths.sum())
    if total == 0:
        return np.empty(0, dtype=np.int64)
    before = np.cumsum(lengths) - lengths
    return np.arange(total, dtype=np.int64) + np.repeat(starts - before, lengths)


def _row_sums(counts: NDArray[np.uint8]) -> NDArray[np.integer[Any]]:
    """Each row's total of per-word popcounts (each at most 64): the Hamming distances.

    ``.sum(axis=1)`` on rows this short spends its time in per-row overhead, which was a large part
    of a search at 10M, so the shapes a search uses take faster paths.
    """
    width = counts.shape[1]
    if width == 4:
        # Read the four counts as one uint32; multiplying by 0x01010101 adds them into the top
        # byte (the lower bytes hold partial sums of at most 192, so nothing carries into it).
        # The total overflows the byte only when all four are 64, the exact complement.
        packed = counts.view(np.uint32).ravel()
        sums = (packed * np.uint32(0x01010101)) >> 24
        sums[packed == 0x40404040] = 256
        return sums
    if width == 2:
        # The same with two counts in a uint16: their sum is at most 128, so it never overflows.
        pair = counts.view(np.uint16).ravel()
        return (pair * np.uint16(0x0101)) >> 8
    sums = counts[:, 0].astype(np.int64)
    for column in range(1, width):
        sums += counts[:, column]
    return sums


def _distances(
    words: NDArray[np.uint64], rows: NDArray[np.int64], query: NDArray[np.uint64]
) -> NDArray[np.integer[Any]]:
    """Hamming distances from the query to the given rows of ``words`` ([N, w] uint64)."""
    # np.take is several times faster than fancy indexing, and XOR a column at a time twice as
    # fast as broadcasting the query over rows of a few words. ``words`` must be a plain
    # contiguous array: np.take on a strided view is a hundred times slower.
    gathered = words.take(rows, axis=0)
    for column, query_word in enumerate(query):
        gathered[:, column] ^= query_word
    return _row_sums(np.bitwise_count(gathered))


def _sort_rows(keys: NDArray[np.integer[Any]]) -> NDArray[np.uint64]:
    """(key << 32 | row) for every row, sorted: the rows in key order, ties in row order.

    ``keys`` must be non-negative and below 2**32, and there must be fewer than 2**32 rows.
    Sorting these composite values is about twice as fast as a stable argsort of the keys (numpy
    sorts uint64 with SIMD, and the pairs carry the row along for free).
    """
    pairs = keys.astype(np.uint64)
    pairs <<= np.uint64(32)
    pairs |= np.arange(len(keys), dtype=np.uint64)
    pairs.sort()
    return pairs


def _bitset_full(rows: int) -> NDArray[np.uint8]:
    """A little-endian bitset of ``rows`` set bits (the bits past the end are clear)."""
    return np.packbits(np.ones(rows, dtype=bool), bitorder="little")


def _bitset_test(bitset: NDArray[np.uint8], rows: NDArray[np.int64]) -> NDArray[np.bool_]:
    return ((bitset[rows >> 3] >> (rows & 7).astype(np.uint8)) & 1).astype(bool)


def _bitset_count(bitset: NDArray[np.uint8]) -> int:
    return int(np.bitwise_count(bitset).sum(dtype=np.int64))


def _id_dtype(ids: NDArray[np.int64]) -> type[np.signedinteger[Any]]:
    """int32 when every id fits (database keys in practice), so ids cost 4 bytes, else int64."""
    if ids.size == 0 or (ids.min() >= _INT32.min and ids.max() <= _INT32.max):
        return np.int32
    return np.int64


class _RowStore:
    """Removal by id over a segment's or cluster block's rows (``ids``, ``id_rows``, ``live``)."""

    codes: NDArray[np.uint8]
    ids: NDArray[np.signedinteger[Any]]
    classes: NDArray[np.int32]
    id_rows: NDArray[np.int64]
    live: NDArray[np.uint8]
    dead: int
    _ids: NDArray[np.signedinteger[Any]]

    @property
    def rows(self) -> int:
        return len(self.ids)

    def live_rows(self) -> tuple[NDArray[np.int64], NDArray[np.uint8], NDArray[np.int32]]:
        """The ids (as int64), codes and classes of the live rows."""
        alive = np.unpackbits(self.live, count=self.rows, bitorder="little").view(bool)
        return (
            np.asarray(self.ids)[alive].astype(np.int64),
            np.asarray(self.codes)[alive],
            np.asarray(self.classes)[alive],
        )

    def rows_with_ids(self, wanted: NDArray[np.int64]) -> NDArray[np.int64]:
        """The rows carrying any of the (sorted, unique) ids."""
        if self.ids.dtype == np.int32:
            # Ids that do not fit cannot be here; casting the rest avoids an int64 copy of ``ids``.
            fits = (wanted >= _INT32.min) & (wanted <= _INT32.max)
            wanted = wanted[fits].astype(np.int32)
        sorter = np.asarray(self.id_rows)
        lo = self._ids.searchsorted(wanted, side="left", sorter=sorter)
        hi = self._ids.searchsorted(wanted, side="right", sorter=sorter)
        if len(wanted) == 1:
            return sorter[int(lo[0]) : int(hi[0])]
        return sorter[_expand_ranges(lo, hi)]

    def kill(self, rows: NDArray[np.int64]) -> int:
        """Clear the live bits of the rows; returns how many were live."""
        if len(rows) == 0:
            return 0
        if len(rows) > 1:
            rows = np.unique(rows)
        rows = rows[_bitset_test(self.live, rows)]
        np.bitwise_and.at(self.live, rows >> 3, ~(np.uint8(1) << (rows & 7).astype(np.uint8)))
        self.dead += len(rows)
        return len(rows)


@dataclass(eq=False)
class _Segment(_RowStore):
    """An immutable multi-index over its own rows, plus a private bitset of live rows.

    Everything but ``live`` may be a read-only memory map of a snapshot.
    """

    codes: NDArray[np.uint8]  # [n, code bytes], rows sorted by chunk 0.
    ids: NDArray[np.signedinteger[Any]]  # [n] int32 or int64, in row order.
    classes: NDArray[np.int32]  # [n] each row's holder class (the caller's filter), row order.
    id_rows: NDArray[np.int64]  # [n] the rows in id order, for ``remove``.
    order_lo: NDArray[np.uint16]  # [m - 1, n]: low 16 bits of the rows sorted by chunk j + 1.
    order_hi: NDArray[np.unsignedinteger[Any]] | None  # [m - 1, n]: the high bits, if n > 2**16.
    offsets: NDArray[np.signedinteger[Any]]  # [m, buckets + 1]: bucket starts, rows or positions.
    shift: int  # Chunk values are bucketed by their top (16 - shift) bits.
    live: NDArray[np.uint8]  # Bitset of live rows; private even when the rest is mapped.
    dead: int

    def __post_init__(self) -> None:
        # Plain flat views for the search path: np.take on an np.memmap pays for the subclass on
        # every call, and the flat tables let one gather serve every probed chunk.
        self._words = np.asarray(self.codes).view(np.uint64)
        self._ids = np.asarray(self.ids)
        self._classes = np.asarray(self.classes)
        width = self._words.shape[1]
        self._front_parts = 2 if width >= 4 and width % 2 == 0 else 1
        self._front = self._words.reshape(-1, width // self._front_parts)
        self._order_lo = np.asarray(self.order_lo).ravel()
        self._order_hi = None if self.order_hi is None else np.asarray(self.order_hi).ravel()
        self._offsets = np.asarray(self.offsets).ravel()
        self._width = self.offsets.shape[1]

    @property
    def live_count(self) -> int:
        return self.rows - self.dead

    @property
    def nbytes(self) -> int:
        arrays = (
            self.codes,
            self.ids,
            self.classes,
            self.id_rows,
            self.order_lo,
            self.order_hi,
            self.offsets,
        )
        return sum(array.nbytes for array in arrays if array is not None) + self.live.nbytes

    def arrays(self) -> dict[str, NDArray[Any]]:
        """The arrays a snapshot stores, by name."""
        named = {name: getattr(self, name) for name in _SEGMENT_ARRAYS}
        return {name: array for name, array in named.items() if array is not None}

    @classmethod
    def build(
        cls, codes: NDArray[np.uint8], ids: NDArray[np.int64], classes: NDArray[np.int32]
    ) -> _Segment:
        n = len(codes)
        if not 0 < n < 1 << 32:
            raise ValueError(f"a segment holds 1 to 2**32 - 1 rows, not {n}.")
        m = codes.shape[1] * 8 // CHUNK_BITS
        # One bucket per two to four rows, capped at the full 16 bits, so a small segment does not
        # carry a 256 KiB offset table per chunk.
        bucket_bits = min(CHUNK_BITS, max(_MIN_BUCKET_BITS, int(n).bit_length() - 2))
        shift = CHUNK_BITS - bucket_bits
        buckets = 1 << bucket_bits
        offsets = np.zeros((m, buckets + 1), dtype=np.int32 if n < 1 << 31 else np.int64)

        # Rows sorted by chunk 0, so that its buckets are row ranges.
        first = _chunk(codes, 0) >> shift
        np.cumsum(np.bincount(first, minlength=buckets), out=offsets[0, 1:])
        by_first = (_sort_rows(first) & 0xFFFFFFFF).astype(np.intp)
        del first
        codes = np.take(np.ascontiguousarray(codes), by_first, axis=0)
        ids = ids[by_first].astype(_id_dtype(ids))
        classes = classes[by_first].astype(np.int32)
        del by_first

        order_lo = np.empty((m - 1, n), dtype=np.uint16)
        hi_dtype = None if n <= 1 << 16 else np.uint8 if n <= 1 << 24 else np.uint16
        order_hi = None if hi_dtype is None else np.empty((m - 1, n), dtype=hi_dtype)
        for j in range(1, m):
            keys = _chunk(codes, j) >> shift
            np.cumsum(np.bincount(keys, minlength=buckets), out=offsets[j, 1:])
            # The sorted (key, row) pairs hold the row in their low 32 bits; astype keeps the
            # low bits of each part, which is the point here.
            pairs = _sort_rows(keys)
            order_lo[j - 1] = pairs.astype(np.uint16)
            if order_hi is not None:
                pairs >>= 16
                order_hi[j - 1] = pairs.astype(order_hi.dtype)
        if ids.dtype == np.int32:
            id_rows = (_sort_rows(ids.astype(np.int64) - _INT32.min) & 0xFFFFFFFF).astype(np.intp)
        else:
            id_rows = np.argsort(ids).astype(np.intp)
        return cls(
            codes=codes,
            ids=ids,
            classes=classes,
            id_rows=id_rows,
            order_lo=order_lo,
            order_hi=order_hi,
            offsets=offsets,
            shift=shift,
            live=_bitset_full(n),
            dead=0,
        )

    def search(
        self,
        probes: _Probes,
        query_chunks: NDArray[np.uint16],
        query: NDArray[np.uint64],
        radius: int,
    ) -> _Rows3:
        """The ids, distances and classes of the live rows within ``radius`` (each row once)."""
        rows = self._candidates(probes, query_chunks)
        if self._front_parts > 1:
            # Half a code rejects nearly every candidate; see the module docstring.
            front = _distances(self._front, rows * self._front_parts, query[: self._front.shape[1]])
            rows = rows[front <= radius]
        distances = _distances(self._words, rows, query)
        close = np.flatnonzero(distances <= radius)
        rows, distances = rows[close], distances[close]
        if len(rows) > 1:
            # A row can be a candidate through several chunks; keep it once (np.unique costs
            # more than the rest of this on arrays this short).
            by_row = np.argsort(rows)
            rows, distances = rows[by_row], distances[by_row]
            fresh = np.empty(len(rows), dtype=bool)
            fresh[0] = True
            np.not_equal(rows[1:], rows[:-1], out=fresh[1:])
            rows, distances = rows[fresh], distances[fresh]
        # Checking the live bit only for the few rows in range saves a random read per candidate.
        alive = _bitset_test(self.live, rows)
        rows = rows[alive]
        return self._ids[rows], distances[alive], self._classes[rows]

    def _candidates(self, probes: _Probes, query_chunks: NDArray[np.uint16]) -> NDArray[np.int64]:
        """The rows in the buckets that the probes select (with repeats; the caller verifies)."""
        chunk_of, masks, first_count = probes.at(self.shift)
        buckets = ((query_chunks[chunk_of] >> self.shift) ^ masks).astype(np.int64)
        flat = chunk_of * self._width + buckets
        starts = self._offsets.take(flat)
        ends = self._offsets.take(flat + 1)
        # Chunk 0's buckets are row ranges; chunk j's are ranges of row j - 1 of the order tables.
        base = (chunk_of - 1) * self.rows
        base[:first_count] = 0
        positions = _expand_ranges(starts + base, ends + base)
        direct = int((ends[:first_count] - starts[:first_count]).sum())
        # Chunk 0's part is already rows; the rest is decoded in place, once both halves of the
        # row numbers have been read from the positions it overwrites.
        tabled = positions[direct:]
        low = self._order_lo.take(tabled)
        if self._order_hi is None:
            tabled[:] = low
        else:
            high = self._order_hi.take(tabled)
            np.left_shift(high, 16, out=tabled, dtype=np.int64)
            tabled |= low
        return positions


def _slice_distances(
    words: NDArray[np.uint64], start: int, end: int, query: NDArray[np.uint64]
) -> NDArray[np.integer[Any]]:
    """Hamming distances from the query to the contiguous rows [start, end) of ``words``."""
    block = words[start:end] ^ query
    return _row_sums(np.bitwise_count(block))


def _weigh(weights: NDArray[np.int64], classes: NDArray[Any]) -> NDArray[np.int64]:
    """Each class's weight (0 for a class the weights do not reach)."""
    classes = classes.astype(np.int64)
    known = classes < len(weights)
    if known.all():
        return weights.take(classes)
    weight = np.zeros(len(classes), dtype=np.int64)
    weight[known] = weights.take(classes[known])
    return weight


def _nearest(ids: NDArray[Any], distances: NDArray[Any], limit: int) -> NDArray[np.int64]:
    """Positions of the ``limit`` rows nearest first, then by id (unordered), in linear time:
    everything nearer than the limit-th distance, then the smallest ids at that distance."""
    if len(ids) <= limit:
        return np.arange(len(ids), dtype=np.int64)
    if limit == 0:
        return np.empty(0, dtype=np.int64)
    # Distances are a few hundred values at most: a histogram finds the cut faster than a
    # partition, and one pass picks the rows up to it.
    counts = np.bincount(distances)
    cut = int(np.searchsorted(np.cumsum(counts), limit))
    upto = np.flatnonzero(distances <= cut)
    at_cut = distances[upto] == cut
    nearer, tied = upto[~at_cut], upto[at_cut]
    wanted = limit - len(nearer)
    if len(tied) > wanted:
        tied = tied[np.argpartition(ids[tied], wanted - 1)[:wanted]]
    return np.concatenate([nearer, tied]).astype(np.int64)


def _dense_rows(codes: NDArray[np.uint8]) -> NDArray[np.int64]:
    """The rows sharing a chunk value with many others: where a cluster of near-duplicates
    shows, since its members agree with each other on most chunks."""
    n = len(codes)
    limit = max(DENSE_BUCKET_ROWS, 16 * n // (1 << CHUNK_BITS))
    if n <= limit:
        return np.empty(0, dtype=np.int64)
    dense = np.zeros(n, dtype=bool)
    for number in range(codes.shape[1] * 8 // CHUNK_BITS):
        values = _chunk(codes, number)
        crowded = np.bincount(values, minlength=1 << CHUNK_BITS) > limit
        if crowded.any():
            dense |= crowded[values]
    return np.flatnonzero(dense)


def _group(
    codes: NDArray[np.uint8], candidates: NDArray[np.int64]
) -> list[tuple[int, NDArray[np.int64], int]]:
    """Greedy leader clustering of the candidate rows: (leader, member rows, radius) per group.

    A random remaining candidate is tried as a leader; the remaining candidates within
    ``CLUSTER_RADIUS`` of it form its group if there are at least ``CLUSTER_MIN_ROWS``, and
    leave the candidates either way. At most ``CLUSTER_ATTEMPTS`` leaders are tried, so the work
    is bounded by attempts times candidates even when the rows are crowded without being close.
    The seed is fixed: the same rows always group the same way.
    """
    words = np.ascontiguousarray(codes).view(np.uint64)
    random = np.random.default_rng(0)
    remaining = candidates
    groups = []
    for _ in range(CLUSTER_ATTEMPTS):
        if len(remaining) < CLUSTER_MIN_ROWS:
            break
        leader = int(remaining[random.integers(len(remaining))])
        distances = _distances(words, remaining, words[leader])
        inside = distances <= CLUSTER_RADIUS
        if int(inside.sum()) >= CLUSTER_MIN_ROWS:
            groups.append((leader, remaining[inside], int(distances[inside].max())))
        remaining = remaining[~inside]
    return groups


@dataclass(eq=False)
class _Clusters(_RowStore):
    """Groups of near-duplicate rows, each within ``radius[g]`` bits of its centre (the bitwise
    majority of its members), searched by scanning only what the triangle inequality allows.

    The multi-index would verify every member of a dense cluster once per chunk it shares
    with the query (16 times for PDQ), and another organisation's cluster would cost a caller
    that work even though the filter drops every row. Here a group costs one distance to its
    centre, is skipped whole when no member could be within the radius or when none of its
    holder classes is allowed to the caller, and otherwise is one contiguous scan of the members
    whose own distance to the centre is within the radius of the query's (they are sorted by
    it): |d(q, c) - d(x, c)| <= d(q, x), so the others cannot match.
    """

    codes: NDArray[np.uint8]  # [n, code bytes], the rows of group g at starts[g]:starts[g + 1].
    ids: NDArray[np.signedinteger[Any]]
    classes: NDArray[np.int32]
    id_rows: NDArray[np.int64]
    live: NDArray[np.uint8]
    starts: NDArray[np.int64]  # [groups + 1]
    centres: NDArray[np.uint8]  # [groups, code bytes]
    to_centre: NDArray[np.uint8]  # [n] each row's distance to its centre, ascending in a group.
    radius: NDArray[np.int32]  # [groups] the farthest member's distance from the centre.
    group_classes: NDArray[np.int32]  # [groups, 2]: (group, class) pairs, each once.
    dead: int

    def __post_init__(self) -> None:
        self._words = np.asarray(self.codes).view(np.uint64)
        self._ids = np.asarray(self.ids)
        self._classes = np.asarray(self.classes)
        self._starts = np.asarray(self.starts)
        self._centres = np.ascontiguousarray(np.asarray(self.centres)).view(np.uint64)
        self._to_centre = np.asarray(self.to_centre)
        self._radius = np.asarray(self.radius).astype(np.int64)
        self._group_of_class = np.asarray(self.group_classes)[:, 0].astype(np.int64)
        self._class_of_group = np.asarray(self.group_classes)[:, 1].astype(np.int64)
        # The class of each group that holds a single one, else -1.
        per_group = np.bincount(self._group_of_class, minlength=self.groups)
        self._single_class = np.full(self.groups, -1, dtype=np.int64)
        single = per_group[self._group_of_class] == 1
        self._single_class[self._group_of_class[single]] = self._class_of_group[single]
        # Where each group's (group, class) pairs begin (they are sorted by group).
        bounds = np.searchsorted(self._group_of_class, np.arange(self.groups + 1))
        self._pair_starts: list[int] = bounds.tolist()

    @property
    def groups(self) -> int:
        return len(self.radius)

    @property
    def live_count(self) -> int:
        return self.rows - self.dead

    @property
    def nbytes(self) -> int:
        return sum(array.nbytes for array in self.arrays().values())

    def arrays(self) -> dict[str, NDArray[Any]]:
        return {name: getattr(self, name) for name in _CLUSTER_ARRAYS}

    @classmethod
    def build(
        cls,
        codes: NDArray[np.uint8],
        ids: NDArray[np.int64],
        classes: NDArray[np.int32],
        groups: list[tuple[int, NDArray[np.int64], int]],
    ) -> _Clusters:
        orders, centres, to_centre = [], [], []
        for _, members, _ in groups:
            bits = np.unpackbits(codes[members], axis=1)
            centre = np.packbits(bits.sum(axis=0, dtype=np.int64) * 2 > len(members))
            distances = _distances(
                np.ascontiguousarray(codes[members]).view(np.uint64),
                np.arange(len(members)),
                centre.view(np.uint64),
            ).astype(np.int64)
            by_distance = np.argsort(distances, kind="stable")
            orders.append(members[by_distance])
            centres.append(centre)
            to_centre.append(distances[by_distance])
        order = np.concatenate(orders).astype(np.intp)
        sizes = np.array([len(part) for part in orders], dtype=np.int64)
        starts = np.zeros(len(groups) + 1, dtype=np.int64)
        np.cumsum(sizes, out=starts[1:])
        grouped_ids = ids[order].astype(_id_dtype(ids))
        grouped_classes = classes[order].astype(np.int32)
        owner = np.repeat(np.arange(len(groups), dtype=np.int64), sizes)
        pairs = np.unique(owner << 32 | grouped_classes.astype(np.int64))
        group_classes = np.stack([pairs >> 32, pairs & 0xFFFFFFFF], axis=1).astype(np.int32)
        return cls(
            codes=np.ascontiguousarray(codes[order]),
            ids=grouped_ids,
            classes=grouped_classes,
            id_rows=np.argsort(grouped_ids, kind="stable").astype(np.int64),
            live=_bitset_full(len(order)),
            starts=starts,
            centres=np.stack(centres).astype(np.uint8),
            to_centre=np.concatenate(to_centre).astype(np.uint8),
            radius=np.array([int(part[-1]) for part in to_centre], dtype=np.int32),
            group_classes=group_classes,
            dead=0,
        )

    def search(
        self,
        query: NDArray[np.uint64],
        radius: int,
        weights: NDArray[np.int64] | None,
        limit: int | None,
    ) -> tuple[_Rows3, int, int]:
        """The nearest ``limit`` live rows within ``radius`` of positive weight (ids, distances,
        classes), and how many more such rows there were with their total weight.

        Only groups whose centre is near enough and that hold a class of positive weight are
        scanned; each scanned group keeps at most ``limit`` rows, so a cluster of any size
        returns twenty rows, not fifty thousand, and is counted where it is scanned.
        """
        centre_distances = _distances(self._centres, np.arange(self.groups), query)
        near = centre_distances <= radius + self._radius
        parts = []
        more_rows = more_total = 0
        for group in np.flatnonzero(near).tolist():
            if weights is not None:
                # Only the near groups' classes are weighed: a group of many classes far from
                # the query costs nothing.
                first, last = self._pair_starts[group], self._pair_starts[group + 1]
                if not (_weigh(weights, self._class_of_group[first:last]) > 0).any():
                    continue
            start, end = int(self._starts[group]), int(self._starts[group + 1])
            # Only the members whose distance to the centre is within the radius of the query's.
            to_centre = self._to_centre[start:end]
            away = int(centre_distances[group])
            start, end = (
                start + int(to_centre.searchsorted(max(away - radius, 0), side="left")),
                start + int(to_centre.searchsorted(min(away + radius, 255), side="right")),
            )
            if start >= end:
                continue
            distances = _slice_distances(self._words, start, end, query)
            rows = np.flatnonzero(distances <= radius)
            if self.dead:
                rows = rows[_bitset_test(self.live, rows + start)]
            rows += start
            if weights is None:
                weight = None
            elif self._single_class[group] >= 0:
                # One class in the whole group (the usual case: one list's cluster), allowed.
                one = int(_weigh(weights, self._single_class[group : group + 1])[0])
                weight = np.full(len(rows), one, dtype=np.int64)
            else:
                weight = _weigh(weights, self._classes[rows])
                positive = weight > 0
                rows, weight = rows[positive], weight[positive]
            if limit is not None and len(rows) > limit:
                kept = _nearest(self._ids[rows], distances[rows - start], limit)
                more_rows += len(rows) - len(kept)
                if weight is None:
                    more_total += len(rows) - len(kept)
                else:
                    more_total += int(weight.sum()) - int(weight[kept].sum())
                rows = rows[kept]
            parts.append((rows, distances[rows - start]))
        if not parts:
            empty = np.empty(0, dtype=np.int64)
            return (self._ids[empty], empty, self._classes[empty]), 0, 0
        rows = np.concatenate([part[0] for part in parts])
        found = np.concatenate([part[1] for part in parts])
        return (self._ids[rows], found, self._classes[rows]), more_rows, more_total


def _split_clusters(
    codes: NDArray[np.uint8],
    ids: NDArray[np.int64],
    classes: NDArray[np.int32],
    *,
    every_row: bool = False,
) -> tuple[NDArray[np.int64], _Clusters | None]:
    """The rows left for the multi-index, and the cluster block of the others (if any).

    ``every_row`` tries to group every row, not only the crowded ones (regrouping blocks).
    """
    candidates = np.arange(len(codes), dtype=np.int64) if every_row else _dense_rows(codes)
    groups = _group(codes, candidates) if len(candidates) >= CLUSTER_MIN_ROWS else []
    if not groups:
        return np.arange(len(codes), dtype=np.int64), None
    grouped = np.zeros(len(codes), dtype=bool)
    for _, members, _ in groups:
        grouped[members] = True
    return np.flatnonzero(~grouped), _Clusters.build(codes, ids, classes, groups)


class HammingIndex:
    """Exact-recall radius search over fixed-length binary codes (see the module docstring).

    ``bits`` must be a multiple of 16 and of 64 (PDQ: 256, pHash: 64). ``max_radius`` is the
    largest radius a search may ask for (PDQ: 31, pHash: 10). Ids are int64 and need not be
    unique: the index is a multiset, and ``remove`` drops every row carrying a given id.

    Each row may carry a *class* (a small non-negative int32, 0 by default). A bounded search
    takes a weight per class: rows whose class weighs 0 are left out before anything is counted
    or kept, and the total it reports is the sum of the kept rows' weights. The match engine
    uses the class for "which lists hold this hash" and the weight for "how many of those the
    caller may match", so the cap on matches is applied after the caller's filter.
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
        self._probe_cache: dict[int, _Probes] = {}
        self._segments: list[_Segment] = []
        self._clusters: list[_Clusters] = []
        self._clear_tail()

    def _clear_tail(self) -> None:
        # The tail starts with no capacity, so that a built or loaded index holds no spare rows.
        self._tail_codes = np.zeros((0, self.code_bytes), dtype=np.uint8)
        self._tail_ids = np.zeros(0, dtype=np.int64)
        self._tail_classes = np.zeros(0, dtype=np.int32)
        self._tail_alive = np.zeros(0, dtype=bool)
        self._tail_rows = 0
        self._tail_dead = 0

    @classmethod
    def build(
        cls,
        ids: ArrayLike,
        codes: ArrayLike,
        *,
        bits: int,
        max_radius: int,
        classes: ArrayLike | None = None,
    ) -> HammingIndex:
        """An index holding the given rows in one exact-size segment (the fast path for a load),
        with its clusters of near-duplicates in a cluster block."""
        index = cls(bits=bits, max_radius=max_radius)
        id_array, code_array, class_array = index._check_rows(ids, codes, classes)
        if len(id_array):
            index._segments.extend(index._built(code_array, id_array, class_array))
        return index

    def __len__(self) -> int:
        """The number of live rows."""
        tail = self._tail_rows - self._tail_dead
        stored = sum(segment.live_count for segment in self._segments)
        return tail + stored + sum(block.live_count for block in self._clusters)

    @property
    def segment_count(self) -> int:
        """How many segments a search probes (O(log N) after incremental adds)."""
        return len(self._segments)

    def memory_bytes(self) -> int:
        """Bytes held by the index's arrays: every segment's codes, ids, tables and live bits
        (memory-mapped ones included), and the tail with its spare capacity."""
        tail = sum(
            array.nbytes
            for array in (self._tail_codes, self._tail_ids, self._tail_classes, self._tail_alive)
        )
        stored = sum(segment.nbytes for segment in self._segments)
        return tail + stored + sum(block.nbytes for block in self._clusters)

    @property
    def cluster_count(self) -> int:
        """How many groups of near-duplicates the index keeps apart from its multi-index."""
        return sum(block.groups for block in self._clusters)

    def bytes_per_hash(self) -> float:
        """``memory_bytes`` divided by the live rows (spare capacity included, so it is honest)."""
        return self.memory_bytes() / max(len(self), 1)

    def add(self, ids: ArrayLike, codes: ArrayLike, classes: ArrayLike | None = None) -> None:
        """Append rows; they are searchable as soon as this returns."""
        id_array, code_array, class_array = self._check_rows(ids, codes, classes)
        count = len(id_array)
        if count == 0:
            return
        self._reserve_tail(self._tail_rows + count)
        end = self._tail_rows + count
        self._tail_codes[self._tail_rows : end] = code_array
        self._tail_ids[self._tail_rows : end] = id_array
        self._tail_classes[self._tail_rows : end] = class_array
        self._tail_alive[self._tail_rows : end] = True
        self._tail_rows = end
        if self._tail_rows >= PENDING_LIMIT:
            self._seal()

    def remove(self, ids: ArrayLike) -> int:
        """Drop every row carrying one of the ids, at once; unknown ids are ignored.

        Returns how many live rows were removed. May rebuild a segment once a quarter of it is
        dead, which costs about as much as building that segment.
        """
        wanted = np.asarray(ids, dtype=np.int64).reshape(-1)
        if wanted.size == 0:
            return 0
        if wanted.size > 1:
            wanted = np.unique(wanted)
        stores: list[_Segment | _Clusters] = [*self._segments, *self._clusters]
        removed = sum(store.kill(store.rows_with_ids(wanted)) for store in stores)
        if self._tail_rows - self._tail_dead:
            tail_ids = self._tail_ids[: self._tail_rows]
            if wanted.size <= 16:
                # np.isin costs tens of microseconds however small its input; change-sequence
                # deltas mostly remove one id at a time.
                hit = (tail_ids[:, None] == wanted[None, :]).any(axis=1)
            else:
                hit = np.isin(tail_ids, wanted)
            hit &= self._tail_alive[: self._tail_rows]
            self._tail_alive[: self._tail_rows] &= ~hit
            tail_removed = int(hit.sum())
            self._tail_dead += tail_removed
            removed += tail_removed
        if removed:
            self._compact()
        return removed

    def search(self, query_codes: ArrayLike, radius: int) -> list[list[Match]]:
        """For each query, every live (id, distance) within ``radius``, nearest first then by id."""
        return [found.hits for found in self.search_bounded(query_codes, radius)]

    def search_bounded(
        self,
        query_codes: ArrayLike,
        radius: int,
        *,
        weights: ArrayLike | None = None,
        limit: int | None = None,
    ) -> list[Found]:
        """For each query, the nearest ``limit`` live rows within ``radius`` whose class has a
        positive weight (nearest first, then by id), with how many such rows there are and
        their total weight. ``weights`` is indexed by class (every class weighs 1 when None);
        ``limit`` None keeps every row."""
        if not 0 <= radius <= self.max_radius:
            raise ValueError(f"radius must be between 0 and {self.max_radius}, not {radius}.")
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be 0 or more, not {limit}.")
        weight_array = None if weights is None else np.asarray(weights, dtype=np.int64)
        queries = self._check_codes(query_codes)
        probes = self._probes(radius)
        return [self._search_one(query, radius, probes, weight_array, limit) for query in queries]

    def _search_one(
        self,
        query: NDArray[np.uint8],
        radius: int,
        probes: _Probes,
        weights: NDArray[np.int64] | None,
        limit: int | None,
    ) -> Found:
        query_words = query.view(np.uint64)
        query_chunks = _chunks(query[None, :])[0]
        found: list[_Rows3] = [
            segment.search(probes, query_chunks, query_words, radius) for segment in self._segments
        ]
        more_rows = more_total = 0
        for block in self._clusters:
            part, rows_beyond, weight_beyond = block.search(query_words, radius, weights, limit)
            found.append(part)
            more_rows += rows_beyond
            more_total += weight_beyond
        if self._tail_rows:
            tail_words = self._tail_codes[: self._tail_rows].view(np.uint64)
            distances = _distances(tail_words, np.arange(self._tail_rows), query_words)
            close = np.flatnonzero((distances <= radius) & self._tail_alive[: self._tail_rows])
            found.append((self._tail_ids[close], distances[close], self._tail_classes[close]))
        if not found:
            return Found([], 0, 0)
        ids = np.concatenate([part[0] for part in found]).astype(np.int64)
        distances = np.concatenate([part[1] for part in found]).astype(np.int64)
        if weights is None:
            total = len(ids)
        else:
            weight = _weigh(weights, np.concatenate([part[2] for part in found]))
            kept = weight > 0
            ids, distances = ids[kept], distances[kept]
            total = int(weight[kept].sum())
        rows = len(ids) + more_rows
        total += more_total
        if limit is not None and len(ids) > limit:
            # The limit nearest in linear time: a cluster's rows are never sorted to keep 20.
            nearest = _nearest(ids, distances, limit)
            ids, distances = ids[nearest], distances[nearest]
        order = np.lexsort((ids, distances))
        hits = list(zip(ids[order].tolist(), distances[order].tolist(), strict=True))
        return Found(hits, rows, total)

    def _probes(self, radius: int) -> _Probes:
        """The (chunk, mask) probes that cover ``radius`` by the pigeonhole rule, cached."""
        cached = self._probe_cache.get(radius)
        if cached is not None:
            return cached
        flips, spare = divmod(radius, self.chunk_count)
        chunks = [np.repeat(np.arange(spare + 1), len(self._masks[flips]))]
        masks = [np.tile(self._masks[flips], spare + 1)]
        if flips > 0 and spare + 1 < self.chunk_count:
            later = np.arange(spare + 1, self.chunk_count)
            chunks.append(np.repeat(later, len(self._masks[flips - 1])))
            masks.append(np.tile(self._masks[flips - 1], len(later)))
        probes = _Probes(
            np.concatenate(chunks).astype(np.int64),
            np.concatenate(masks).astype(np.uint16),
            len(self._masks[flips]),
        )
        self._probe_cache[radius] = probes
        return probes

    def _check_rows(
        self, ids: ArrayLike, codes: ArrayLike, classes: ArrayLike | None = None
    ) -> tuple[NDArray[np.int64], NDArray[np.uint8], NDArray[np.int32]]:
        id_array = np.asarray(ids, dtype=np.int64).reshape(-1)
        code_array = self._check_codes(codes)
        if len(id_array) != len(code_array):
            raise ValueError(f"{len(id_array)} ids but {len(code_array)} codes.")
        if classes is None:
            return id_array, code_array, np.zeros(len(id_array), dtype=np.int32)
        wide = np.asarray(classes, dtype=np.int64).reshape(-1)
        if len(wide) != len(id_array):
            raise ValueError(f"{len(id_array)} ids but {len(wide)} classes.")
        if len(wide) and (wide.min() < 0 or wide.max() > _INT32.max):
            raise ValueError("classes must be between 0 and 2**31 - 1.")
        return id_array, code_array, wide.astype(np.int32)

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

    def _reserve_tail(self, rows: int) -> None:
        capacity = len(self._tail_ids)
        if rows <= capacity:
            return
        # Grow by half again, like a list, but jump straight to the size a bulk add needs.
        capacity = max(rows, capacity + capacity // 2, 64)
        codes = np.zeros((capacity, self.code_bytes), dtype=np.uint8)
        codes[: self._tail_rows] = self._tail_codes[: self._tail_rows]
        ids = np.zeros(capacity, dtype=np.int64)
        ids[: self._tail_rows] = self._tail_ids[: self._tail_rows]
        classes = np.zeros(capacity, dtype=np.int32)
        classes[: self._tail_rows] = self._tail_classes[: self._tail_rows]
        alive = np.zeros(capacity, dtype=bool)
        alive[: self._tail_rows] = self._tail_alive[: self._tail_rows]
        self._tail_codes, self._tail_ids, self._tail_alive = codes, ids, alive
        self._tail_classes = classes

    def _seal(self) -> None:
        """Index the pending tail's live rows as a segment, then merge segments of similar size."""
        alive = self._tail_alive[: self._tail_rows]
        ids, codes, classes = (
            self._tail_ids[: self._tail_rows][alive],
            self._tail_codes[: self._tail_rows][alive],
            self._tail_classes[: self._tail_rows][alive],
        )
        self._clear_tail()
        if len(ids):
            self._segments.extend(self._built(codes, ids, classes))
        self._merge_similar()

    def _merge_similar(self) -> None:
        while len(self._segments) >= 2 and self._segments[-2].rows <= 2 * self._segments[-1].rows:
            younger = self._segments.pop()
            older = self._segments.pop()
            self._segments.extend(self._rebuilt([older, younger]))

    def _compact(self) -> None:
        """Rebuild the segments and cluster blocks that are a quarter dead (or more)."""
        changed = False
        for number, segment in enumerate(self._segments):
            if segment.dead > max(PENDING_LIMIT // 4, segment.rows // 4) or not segment.live_count:
                self._segments[number : number + 1] = self._rebuilt([segment])
                changed = True
        if any(block.dead > block.rows // 4 for block in self._clusters):
            self._regroup()
            changed = True
        if changed:
            self._merge_similar()

    def _built(
        self, codes: NDArray[np.uint8], ids: NDArray[np.int64], classes: NDArray[np.int32]
    ) -> list[_Segment]:
        """A segment of the rows, its clusters of near-duplicates set apart in a cluster block
        (added to the index's blocks, regrouped once there are too many)."""
        plain, block = _split_clusters(codes, ids, classes)
        if block is not None:
            self._clusters.append(block)
            if len(self._clusters) > CLUSTER_BLOCKS_MAX:
                self._regroup()
        if not len(plain):
            return []
        if len(plain) == len(ids):
            return [_Segment.build(codes, ids, classes)]
        return [_Segment.build(codes[plain], ids[plain], classes[plain])]

    def _regroup(self) -> None:
        """Group the live rows of every cluster block again into one block; the rows that no
        longer form a cluster (their neighbours were removed) go to a plain segment."""
        parts = [block.live_rows() for block in self._clusters]
        self._clusters = []
        if not parts:
            return
        ids = np.concatenate([part[0] for part in parts])
        codes = np.concatenate([part[1] for part in parts])
        classes = np.concatenate([part[2] for part in parts])
        if not len(ids):
            return
        plain, block = _split_clusters(codes, ids, classes, every_row=True)
        if block is not None:
            self._clusters.append(block)
        if len(plain):
            self._segments.append(_Segment.build(codes[plain], ids[plain], classes[plain]))

    def _rebuilt(self, segments: list[_Segment]) -> list[_Segment]:
        """The segment holding the live rows of the given ones (none if there are none left)."""
        parts = [segment.live_rows() for segment in segments]
        ids = np.concatenate([part[0] for part in parts])
        if not len(ids):
            return []
        codes = np.concatenate([part[1] for part in parts])
        return self._built(codes, ids, np.concatenate([part[2] for part in parts]))

    # Snapshots -------------------------------------------------------------------------------

    def save(self, directory: Path) -> None:
        """Write a snapshot that ``load`` can memory-map, replacing any previous one atomically.

        Side effects: writes a new version directory next to ``directory`` (named
        ``.<name>.v<time>``), points the symlink ``directory`` at it with one atomic rename, and
        deletes the versions older than the previous one (the previous one stays, for a reader
        that was opening it). A real directory found at ``directory`` is moved aside first.
        """
        target = Path(directory)
        parent = target.parent
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=parent))
        try:
            self._write_snapshot(staging)
            version = parent / f".{target.name}.v{time.time_ns():020d}"
            staging.rename(version)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        link = parent / f".{target.name}.link-{version.name}"
        link.symlink_to(version.name)
        if target.exists() and not target.is_symlink():
            target.rename(parent / f".{target.name}.v0-moved-{time.time_ns()}")
        os.replace(link, target)
        _fsync_directory(parent)
        versions = sorted(parent.glob(f".{target.name}.v*"))
        for old in versions[:-_KEPT_VERSIONS]:
            shutil.rmtree(old, ignore_errors=True)

    def _write_snapshot(self, directory: Path) -> None:
        segments = list(self._segments)
        alive = self._tail_alive[: self._tail_rows]
        tail_ids = self._tail_ids[: self._tail_rows][alive]
        tail_codes = self._tail_codes[: self._tail_rows][alive]
        tail_classes = self._tail_classes[: self._tail_rows][alive]
        manifest: dict[str, Any] = {
            "format": SNAPSHOT_FORMAT,
            "version": SNAPSHOT_VERSION,
            "bits": self.bits,
            "max_radius": self.max_radius,
            "chunk_bits": CHUNK_BITS,
            "segments": [],
            "clusters": [],
            "tail": _write_arrays(
                directory, "tail", {"ids": tail_ids, "codes": tail_codes, "classes": tail_classes}
            ),
        }
        for number, segment in enumerate(segments):
            entry = _write_arrays(directory, f"segment-{number}", segment.arrays())
            entry.update(rows=segment.rows, shift=segment.shift, dead=segment.dead)
            manifest["segments"].append(entry)
        for number, block in enumerate(list(self._clusters)):
            entry = _write_arrays(directory, f"clusters-{number}", block.arrays())
            entry.update(rows=block.rows, groups=block.groups, dead=block.dead)
            manifest["clusters"].append(entry)
        # The manifest goes last: a directory without one is never a snapshot.
        with open(directory / MANIFEST_NAME, "w") as file:
            json.dump(manifest, file, indent=1)
            file.flush()
            os.fsync(file.fileno())
        _fsync_directory(directory)

    @classmethod
    def load(
        cls,
        directory: Path,
        *,
        mmap: bool = True,
        bits: int | None = None,
        max_radius: int | None = None,
    ) -> HammingIndex:
        """The index saved in ``directory``; with ``mmap`` its arrays are read-only memory maps.

        ``bits`` (when given) must match the snapshot's; ``max_radius`` (when given) replaces the
        saved one, since the tables do not depend on it. Raises ``ValueError`` for a missing,
        corrupt, truncated or mismatched snapshot, so that the caller can rebuild from the
        database instead.
        """
        # Resolve the symlink once, so that every file comes from the same version even if a
        # new snapshot is published meanwhile.
        root = Path(directory).resolve()
        try:
            with open(root / MANIFEST_NAME) as file:
                manifest = json.load(file)
            if not isinstance(manifest, dict):
                raise TypeError("the manifest is not an object")
            return cls._from_manifest(root, manifest, mmap=mmap, bits=bits, max_radius=max_radius)
        except SnapshotError as error:
            raise ValueError(f"Index snapshot {directory} is unusable: {error}.") from error
        except (OSError, ValueError, KeyError, TypeError, EOFError) as error:
            raise ValueError(
                f"Index snapshot {directory} is unusable: {type(error).__name__}: {error}."
            ) from error

    @classmethod
    def _from_manifest(
        cls,
        root: Path,
        manifest: Mapping[str, Any],
        *,
        mmap: bool,
        bits: int | None,
        max_radius: int | None,
    ) -> HammingIndex:
        if manifest.get("format") != SNAPSHOT_FORMAT or manifest.get("version") != SNAPSHOT_VERSION:
            raise SnapshotError("unknown format or version")
        if manifest["chunk_bits"] != CHUNK_BITS:
            raise SnapshotError(f"chunk bits {manifest['chunk_bits']}, expected {CHUNK_BITS}")
        if bits is not None and manifest["bits"] != bits:
            raise SnapshotError(f"it holds {manifest['bits']}-bit codes, expected {bits}")
        saved_radius = int(manifest["max_radius"])
        index = cls(
            bits=int(manifest["bits"]),
            max_radius=saved_radius if max_radius is None else max_radius,
        )
        m = index.chunk_count
        for entry in manifest["segments"]:
            arrays = _read_arrays(root, entry, mmap=mmap)
            rows, shift = int(entry["rows"]), int(entry["shift"])
            if not 0 <= shift < CHUNK_BITS:
                raise SnapshotError(f"bad bucket shift {shift}")
            hi_expected = rows > 1 << 16
            shapes = {
                "codes": (rows, index.code_bytes),
                "ids": (rows,),
                "classes": (rows,),
                "id_rows": (rows,),
                "order_lo": (m - 1, rows),
                "offsets": (m, (1 << (CHUNK_BITS - shift)) + 1),
                "live": ((rows + 7) // 8,),
            }
            if hi_expected:
                shapes["order_hi"] = (m - 1, rows)
            if set(arrays) != set(shapes):
                raise SnapshotError(f"{entry['name']} holds arrays {sorted(arrays)}")
            for name, shape in shapes.items():
                if arrays[name].shape != shape:
                    raise SnapshotError(f"{entry['name']}.{name} has shape {arrays[name].shape}")
            offsets = np.asarray(arrays["offsets"])
            if (offsets[:, 0] != 0).any() or (offsets[:, -1] != rows).any():
                raise SnapshotError(f"{entry['name']} has inconsistent bucket offsets")
            # The live bits are the one private, writable array of a loaded segment.
            live = np.array(arrays["live"], dtype=np.uint8)
            dead = rows - _bitset_count(live)
            if dead != entry["dead"]:
                raise SnapshotError(f"{entry['name']} has {dead} dead rows, not {entry['dead']}")
            index._segments.append(
                _Segment(
                    codes=arrays["codes"],
                    ids=arrays["ids"],
                    classes=arrays["classes"],
                    id_rows=arrays["id_rows"],
                    order_lo=arrays["order_lo"],
                    order_hi=arrays.get("order_hi"),
                    offsets=arrays["offsets"],
                    shift=shift,
                    live=live,
                    dead=dead,
                )
            )
        for entry in manifest["clusters"]:
            index._clusters.append(cls._clusters_from(root, entry, index.code_bytes, mmap=mmap))
        tail = _read_arrays(root, manifest["tail"], mmap=False)
        if set(tail) != {"ids", "codes", "classes"}:
            raise SnapshotError("the tail is incomplete")
        index.add(tail["ids"], tail["codes"], tail["classes"])
        return index

    @staticmethod
    def _clusters_from(
        root: Path, entry: Mapping[str, Any], code_bytes: int, *, mmap: bool
    ) -> _Clusters:
        arrays = _read_arrays(root, entry, mmap=mmap)
        rows, groups = int(entry["rows"]), int(entry["groups"])
        shapes = {
            "codes": (rows, code_bytes),
            "ids": (rows,),
            "classes": (rows,),
            "id_rows": (rows,),
            "live": ((rows + 7) // 8,),
            "starts": (groups + 1,),
            "centres": (groups, code_bytes),
            "to_centre": (rows,),
            "radius": (groups,),
        }
        if set(arrays) != {*shapes, "group_classes"}:
            raise SnapshotError(f"{entry['name']} holds arrays {sorted(arrays)}")
        for name, shape in shapes.items():
            if arrays[name].shape != shape:
                raise SnapshotError(f"{entry['name']}.{name} has shape {arrays[name].shape}")
        starts = np.asarray(arrays["starts"])
        if groups < 1 or starts[0] != 0 or starts[-1] != rows or (np.diff(starts) < 1).any():
            raise SnapshotError(f"{entry['name']} has inconsistent group starts")
        pairs = np.asarray(arrays["group_classes"])
        if pairs.ndim != 2 or pairs.shape[1] != 2 or (pairs[:, 0] >= groups).any():
            raise SnapshotError(f"{entry['name']} has inconsistent group classes")
        live = np.array(arrays["live"], dtype=np.uint8)
        dead = rows - _bitset_count(live)
        if dead != entry["dead"]:
            raise SnapshotError(f"{entry['name']} has {dead} dead rows, not {entry['dead']}")
        return _Clusters(
            codes=arrays["codes"],
            ids=arrays["ids"],
            classes=arrays["classes"],
            id_rows=arrays["id_rows"],
            live=live,
            starts=arrays["starts"],
            centres=arrays["centres"],
            to_centre=arrays["to_centre"],
            radius=arrays["radius"],
            group_classes=arrays["group_classes"],
            dead=dead,
        )


class SnapshotError(Exception):
    """A snapshot's content does not make sense (reported by ``load`` as a ValueError)."""


_DTYPES = {
    "codes": {"uint8"},
    "ids": {"int32", "int64"},
    "classes": {"int32"},
    "id_rows": {"int64"},
    "starts": {"int64"},
    "centres": {"uint8"},
    "to_centre": {"uint8"},
    "radius": {"int32"},
    "group_classes": {"int32"},
    "order_lo": {"uint16"},
    "order_hi": {"uint8", "uint16"},
    "offsets": {"int32", "int64"},
    "live": {"uint8"},
}


def _write_arrays(directory: Path, name: str, arrays: Mapping[str, NDArray[Any]]) -> dict[str, Any]:
    """Save each array as ``<name>.<array>.npy`` (fsynced); the manifest entry describing them."""
    described = {}
    for key, array in arrays.items():
        path = directory / f"{name}.{key}.npy"
        with open(path, "wb") as file:
            np.save(file, np.ascontiguousarray(array), allow_pickle=False)
            file.flush()
            os.fsync(file.fileno())
        described[key] = {
            "file": path.name,
            "dtype": str(array.dtype),
            "shape": list(array.shape),
            "bytes": path.stat().st_size,
        }
    return {"name": name, "arrays": described}


def _read_arrays(root: Path, entry: Mapping[str, Any], *, mmap: bool) -> dict[str, NDArray[Any]]:
    arrays = {}
    for key, described in entry["arrays"].items():
        if key not in _DTYPES:
            raise SnapshotError(f"unexpected array {key}")
        path = root / Path(described["file"]).name
        size = path.stat().st_size
        if size != described["bytes"]:
            raise SnapshotError(f"{path.name} has {size} bytes, expected {described['bytes']}")
        array = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
        if str(array.dtype) != described["dtype"] or list(array.shape) != described["shape"]:
            raise SnapshotError(f"{path.name} holds {array.dtype}{list(array.shape)}")
        if str(array.dtype) not in _DTYPES[key]:
            raise SnapshotError(f"{path.name} has dtype {array.dtype}")
        arrays[key] = array
    return arrays


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
