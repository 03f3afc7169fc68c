"""The per-process match index over the merged set, kept current through the change sequence.

What it holds
-------------
For each perceptual signal type (PDQ, pHash) one :class:`~matching.index.HammingIndex` of every
hash that has at least one live entry in any list, keyed by the hash's primary key. Exact types
need no memory structure: PostgreSQL's unique btree on (signal_type, value) is the lookup.

Each row carries a *holder class*: the interned set of holder keys of its hash, i.e. which lists
hold it live and which anonymous lists hold it in their published view (``lists.changes``). A
bounded search weighs each class by how many of its keys the caller may match, so the index
leaves out every hash held only where the caller may not match *before* it counts, caps or
returns anything (DESIGN.md invariants 7 and 9): another organisation's list, however large or
clustered, neither hides the caller's matches nor shows in the answer. Which lists those are, and
the match details, are still read from the database for the few hashes the search keeps.

How it stays current (read-your-writes)
---------------------------------------
The index remembers the change number it reflects. Each search first reads the last committed
number (one primary-key read); if it moved, one SQL statement returns every hash touched by an
add or a removal since then, whether it is still live, and the number it read in the same
snapshot. Touched hashes are dropped from the index and the live ones re-added, so the index
never holds duplicates and removals take effect on the next request. Because change numbers are
handed out in commit order (``lists/models.py``), nothing committed can be skipped: a hash added
through any process is matched by the very next request in every other process.

Start-up
--------
A process loads the newest snapshot (``snapshot_write``, run by a Celery beat task: the arrays are
memory-mapped, so every worker process on the machine shares one copy of the pages) and then
applies the changes after the snapshot's number. Without a usable snapshot it builds the index
from the database. A snapshot from another database, or from a number ahead of the database
(a restore), is ignored.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import redis
from django.conf import settings
from django.db import connection
from django.utils import timezone
from numpy.typing import NDArray

from lists import changes
from lists.changes import sequence_last
from lists.hashtypes import all_signal_types
from matching.index import Found, HammingIndex, Match

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Spec:
    name: str
    bits: int
    max_radius: int


def _perceptual_specs() -> dict[str, _Spec]:
    return {
        t.name: _Spec(t.name, t.bits, t.max_distance)
        for t in all_signal_types()
        if t.kind == "perceptual"
    }


def _database_identity() -> str:
    """Which database this is, so a snapshot of another one is never loaded."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT system_identifier::text, current_database() FROM pg_control_system()"
        )
        row = cursor.fetchone()
    return f"{row[0]}/{row[1]}" if row else ""


class HolderClasses:
    """Interned sets of holder keys (``lists.changes``): class 0 is the empty set.

    Classes are only ever added, so a class number stays valid for the life of the index that
    uses it; ``weights`` turns the keys a caller may match into a weight per class, cached for
    the few callers' key sets seen lately. A cached caller's weights are extended by the classes
    added since, never recomputed, so a tenant that keeps making new combinations of lists
    costs each request only its new classes.
    """

    _CACHED_WEIGHTS = 64

    def __init__(self, classes: Sequence[Sequence[int]] = ((),)) -> None:
        self._keys: list[tuple[int, ...]] = []
        self._number: dict[tuple[int, ...], int] = {}
        # Every class's keys end to end, and the class each belongs to (appended on intern).
        self._flat: list[int] = []
        self._owner: list[int] = []
        self._starts: list[int] = []  # where each class's keys begin in _flat
        self._weights: dict[tuple[int, ...], NDArray[np.int64]] = {}
        if not classes or tuple(classes[0]):
            raise ValueError("class 0 must be the empty set of keys.")
        for keys in classes:
            self.intern(keys)

    def __len__(self) -> int:
        return len(self._keys)

    def intern(self, keys: Sequence[int]) -> int:
        """The class of this set of keys (sorted and unique), made on first sight."""
        key = tuple(sorted(set(int(k) for k in keys)))
        number = self._number.get(key)
        if number is None:
            number = len(self._keys)
            self._keys.append(key)
            self._number[key] = number
            self._starts.append(len(self._flat))
            self._flat.extend(key)
            self._owner.extend([number] * len(key))
        return number

    def as_lists(self) -> list[list[int]]:
        return [list(keys) for keys in self._keys]

    def weights(self, allowed: Sequence[int]) -> NDArray[np.int64]:
        """How many of ``allowed`` (sorted, unique) each class holds."""
        wanted = tuple(allowed)
        count = len(self._keys)
        cached = self._weights.pop(wanted, None)
        if cached is None or len(cached) < count:
            cached = self._extended(wanted, cached, count)
        if len(self._weights) >= self._CACHED_WEIGHTS:
            self._weights.pop(next(iter(self._weights)))
        # Re-inserted last: the dict's order is the least recently used first.
        self._weights[wanted] = cached
        return cached

    def _extended(
        self, wanted: tuple[int, ...], cached: NDArray[np.int64] | None, count: int
    ) -> NDArray[np.int64]:
        """``cached`` (the weights of the first classes, or None) with the rest computed."""
        known = 0 if cached is None else len(cached)
        begin = self._starts[known]
        flat = np.asarray(self._flat[begin:], dtype=np.int64)
        owner = np.asarray(self._owner[begin:], dtype=np.int64) - known
        hit = np.isin(flat, np.asarray(wanted, dtype=np.int64))
        added = np.bincount(owner[hit], minlength=count - known).astype(np.int64)
        return added if cached is None else np.concatenate([cached, added])


class _Rows:
    """Ids, codes and holder classes of one signal type read from the database."""

    def __init__(self, code_bytes: int) -> None:
        self.code_bytes = code_bytes
        self.ids: list[int] = []
        self.values: list[bytes] = []
        self.classes: list[int] = []

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ids = np.fromiter(self.ids, dtype=np.int64, count=len(self.ids))
        codes = np.frombuffer(b"".join(self.values), dtype=np.uint8).reshape(-1, self.code_bytes)
        classes = np.fromiter(self.classes, dtype=np.int32, count=len(self.classes))
        return ids, codes, classes


def _fetch(
    chunks: Iterator[list[tuple[Any, ...]]], specs: dict[str, _Spec], classes: HolderClasses
) -> tuple[int, dict[str, _Rows], dict[str, list[int]]]:
    """Read a change-feed read's rows (lists.changes); return its change number, and per type
    the live rows with their holder classes (interned into ``classes``) and the touched ids."""
    live = {name: _Rows(spec.bits // 8) for name, spec in specs.items()}
    touched: dict[str, list[int]] = {name: [] for name in specs}
    last = 0
    for rows in chunks:
        for row in rows:
            last = int(row[0])
            if row[1] is None:
                continue
            hash_id, signal_type, value, keys = row[1], row[2], bytes(row[3]), row[4]
            touched[signal_type].append(hash_id)
            if keys:
                live[signal_type].ids.append(hash_id)
                live[signal_type].values.append(value)
                live[signal_type].classes.append(classes.intern(keys))
    return last, live, touched


REPORT_EVERY_SECONDS = 60.0
"""How often a process tells Redis what its index holds (on a search or sync, never idle)."""
_REPORT_KEY = "hashhub:index-report:"
_REPORT_TTL_SECONDS = 3 * 3600


@dataclass(frozen=True)
class IndexReport:
    """What one process's index held at one change number: its size per perceptual type."""

    process: str
    version: int
    sizes: dict[str, int]
    reported_at: str = ""  # ISO time, UTC

    def as_dict(self) -> dict[str, Any]:
        return {
            "process": self.process,
            "version": self.version,
            "sizes": self.sizes,
            "reported_at": self.reported_at,
        }


@functools.cache
def _redis() -> redis.Redis:
    # One client (and its connection pool) per process: a report is published every minute.
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1)


def report_publish(report: IndexReport) -> None:
    """Keep ``report`` in Redis for a few hours, where :func:`reports_read` finds it.

    Best effort: a match must not fail because Redis is briefly away; the next report follows.
    """
    try:
        _redis().set(
            _REPORT_KEY + report.process, json.dumps(report.as_dict()), ex=_REPORT_TTL_SECONDS
        )
    except redis.RedisError as error:
        logger.warning("could not publish the match index report: %s", error)


def reports_read() -> list[IndexReport]:
    """The latest report of every process that searched or synced in the last few hours."""
    client = _redis()
    reports = []
    for key in sorted(client.scan_iter(match=_REPORT_KEY + "*", count=500)):
        raw = client.get(key)
        if raw is None:
            continue  # expired between the scan and the read
        data = json.loads(raw)
        reports.append(
            IndexReport(
                process=str(data["process"]),
                version=int(data["version"]),
                sizes={str(k): int(v) for k, v in data["sizes"].items()},
                reported_at=str(data.get("reported_at", "")),
            )
        )
    return reports


def live_sizes_at(version: int) -> dict[str, int]:
    """How many distinct live hashes of each perceptual type the database held at ``version``."""
    return changes.live_sizes_at(version=version, types=sorted(_perceptual_specs()))


class MatchEngine:
    """The index of one process; thread-safe (one lock around syncing and searching)."""

    def __init__(self, snapshot_dir: Path | None = None) -> None:
        self._lock = threading.Lock()
        self._snapshot_dir = snapshot_dir
        self._reset()

    def _reset(self) -> None:
        self._version: int | None = None
        # Where the index last started from: "snapshot" or "database" (for logs and tests).
        self.started_from = ""
        self._indexes: dict[str, HammingIndex] = {}
        self._classes = HolderClasses()
        self._specs = _perceptual_specs()
        self._reported_at = -REPORT_EVERY_SECONDS

    @property
    def version(self) -> int | None:
        """The change number the index reflects (None before the first use)."""
        return self._version

    def reset(self) -> None:
        """Forget everything; the next search loads afresh (tests, or after a database restore)."""
        with self._lock:
            self._reset()

    def search(
        self, signal_type: str, codes: Sequence[bytes], radius: int, *, last: int | None = None
    ) -> list[list[Match]]:
        """For each code, every (hash id, distance) within ``radius`` among live hashes.

        Applies every change committed before the call first (read-your-writes). The change
        number is read before taking the lock, so threads of one process (gthread workers) do
        not queue behind each other's database round trip. A caller that read it already in
        this request (the match API, with the key's lookup) passes it as ``last``.
        """
        return [
            found.hits
            for found in self._search(signal_type, codes, radius, keys=None, limit=None, last=last)
        ]

    def search_bounded(
        self,
        signal_type: str,
        codes: Sequence[bytes],
        radius: int,
        *,
        keys: Sequence[int],
        limit: int,
        last: int | None = None,
    ) -> list[Found]:
        """For each code, the nearest ``limit`` hashes within ``radius`` held under any of the
        holder ``keys`` (what the caller may match), with how many there are and how many
        (list, hash) matches they make. Syncs first, like :meth:`search`."""
        return self._search(signal_type, codes, radius, keys=keys, limit=limit, last=last)

    def _search(
        self,
        signal_type: str,
        codes: Sequence[bytes],
        radius: int,
        *,
        keys: Sequence[int] | None,
        limit: int | None,
        last: int | None,
    ) -> list[Found]:
        allowed = None if keys is None else sorted(set(keys))
        if self._version is not None and last is None:
            last = sequence_last()
        with self._lock:
            self._sync(last)
            report = self._report_due()
            index = self._indexes[signal_type]
            if not codes:
                found: list[Found] = []
            else:
                weights = None if allowed is None else self._classes.weights(allowed)
                queries = np.frombuffer(b"".join(codes), dtype=np.uint8).reshape(len(codes), -1)
                found = index.search_bounded(queries, radius, weights=weights, limit=limit)
        if report is not None:
            report_publish(report)
        return found

    def sync(self) -> int:
        """Bring the index up to the last committed change; returns the change number."""
        with self._lock:
            self._sync()
            report = self._report_due()
            version = self._version or 0
        if report is not None:
            report_publish(report)
        return version

    def state(self) -> IndexReport:
        """This process's index now: its change number and size per type (synced first)."""
        with self._lock:
            self._sync()
            return self._report()

    def _report(self) -> IndexReport:
        return IndexReport(
            process=f"{socket.gethostname()}:{os.getpid()}",
            version=self._version or 0,
            sizes={name: len(index) for name, index in sorted(self._indexes.items())},
            reported_at=timezone.now().isoformat(timespec="seconds"),
        )

    def _report_due(self) -> IndexReport | None:
        """Every so often, what this process's index holds, for the reconciler to check."""
        now = time.monotonic()
        if now - self._reported_at < REPORT_EVERY_SECONDS:
            return None
        self._reported_at = now
        return self._report()

    def size(self, signal_type: str) -> int:
        with self._lock:
            index = self._indexes.get(signal_type)
            return len(index) if index is not None else 0

    def _sync(self, last: int | None = None) -> None:
        if self._version is None:
            self._load()
            return
        if last is None or last < self._version:
            # Read (again) under the lock: a number read before it may simply be older than what
            # another thread has synced to since; only a fresh one going back means a restore.
            last = sequence_last()
        if last < self._version:
            # The sequence went backwards: the database was restored (or a test rolled back).
            logger.warning(
                "change sequence went back from %s to %s; rebuilding", self._version, last
            )
            self._load()
        elif last > self._version:
            self._apply_delta(self._version)

    def _load(self) -> None:
        started = time.monotonic()
        self._indexes = {}
        self._classes = HolderClasses()
        version = self._load_snapshot()
        if version is None:
            self._build_from_database()
            self.started_from = "database"
        else:
            self._version = version
            self._apply_delta(version)
            self.started_from = "snapshot"
        logger.info(
            "match index ready at change %s from the %s in %.2f s (%s)",
            self._version,
            self.started_from,
            time.monotonic() - started,
            ", ".join(f"{name}: {len(index)}" for name, index in self._indexes.items()),
        )

    def _build_from_database(self) -> None:
        last, live, _ = _fetch(
            changes.live_hashes(types=list(self._specs)), self._specs, self._classes
        )
        for name, spec in self._specs.items():
            ids, codes, classes = live[name].arrays()
            self._indexes[name] = HammingIndex.build(
                ids, codes, classes=classes, bits=spec.bits, max_radius=spec.max_radius
            )
        self._version = last

    def _apply_delta(self, since: int) -> None:
        last, live, touched = _fetch(
            changes.hashes_touched_since(since=since, types=list(self._specs)),
            self._specs,
            self._classes,
        )
        for name, index in self._indexes.items():
            if touched[name]:
                index.remove(touched[name])
                ids, codes, classes = live[name].arrays()
                index.add(ids, codes, classes)
        self._version = max(last, since)

    def _load_snapshot(self) -> int | None:
        """Load the snapshot if it fits this database; its change number, or None."""
        directory = self._snapshot_dir
        if directory is None or not (directory / "manifest.json").exists():
            return None
        try:
            manifest = json.loads((directory / "manifest.json").read_text())
            if manifest.get("database") != _database_identity():
                return None
            version = int(manifest["version"])
            last = sequence_last()
            if version > last:
                # Written after the database's latest change: the database was restored from a
                # backup older than the snapshot (README, "Backup and restore").
                logger.warning(
                    "refusing the match index snapshot in %s: it is at change %s, ahead of the "
                    "database's %s (a restore?); rebuilding from the database",
                    directory,
                    version,
                    last,
                )
                return None
            classes = HolderClasses(manifest["classes"])
            indexes = {}
            for name in self._specs:
                indexes[name] = HammingIndex.load(directory / manifest["types"][name], mmap=True)
        except (OSError, ValueError, KeyError, TypeError) as error:
            logger.warning("ignoring the match index snapshot in %s: %s", directory, error)
            return None
        self._indexes = indexes
        self._classes = classes
        return version


def snapshot_write(directory: Path | None = None) -> int:
    """Write a snapshot of every live perceptual hash for processes to load; returns its number.

    Built from the database (not from this process's index). Each type's index is published by
    :meth:`HammingIndex.save` with an atomic rename, and the manifest naming the change number is
    replaced last. A process that loads in between may pair the old manifest with a newer index;
    that is harmless, because applying the changes after the manifest's number to a newer index
    drops and re-adds every hash they touch and so ends in the same state.
    """
    directory = directory or Path(settings.HASHHUB_INDEX_DIR)
    directory.mkdir(parents=True, exist_ok=True)
    specs = _perceptual_specs()
    classes = HolderClasses()
    last, live, _ = _fetch(changes.live_hashes(types=list(specs)), specs, classes)
    for name, spec in specs.items():
        ids, codes, row_classes = live[name].arrays()
        index = HammingIndex.build(
            ids, codes, classes=row_classes, bits=spec.bits, max_radius=spec.max_radius
        )
        index.save(directory / name)
    manifest = {
        "version": last,
        "database": _database_identity(),
        "types": {name: name for name in specs},
        # The holder classes the indexes' rows refer to by number.
        "classes": classes.as_lists(),
    }
    temporary = directory / f"manifest.json.{os.getpid()}.tmp"
    temporary.write_text(json.dumps(manifest))
    os.replace(temporary, directory / "manifest.json")
    return last


_engine: MatchEngine | None = None
_engine_lock = threading.Lock()


def get_engine() -> MatchEngine:
    """This process's engine, made on first use."""
    global _engine  # One index per process is the design.
    with _engine_lock:
        if _engine is None:
            _engine = MatchEngine(Path(settings.HASHHUB_INDEX_DIR))
        return _engine
