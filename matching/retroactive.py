"""Retroactive matching: a hash that enters a list later still finds the content it names.

An organisation opts in with its match policy's ``retroactive_days`` (1-365; 0 is off). Then the
match service keeps every valid hash it submits (never an image: for an upload, the hashes
computed from it, not their rotations) with the request's ``content_ref`` and time, for that many
days, under a per-organisation quota (:func:`submissions_keep`).

When a hash enters a list (``lists.changes.entries_entered_since``: live adds, and for other
organisations' anonymous lists their published view), :func:`retroactive_run` looks for kept
submissions it names: exact types by value through a database index, PDQ and pHash within the
server's largest radius through a :class:`KeptIndex`, a persistent Hamming index of the kept
submissions caught up incrementally from their ids. For each kept submission whose organisation
may match that list, in that view, it runs the organisation's normal match for the kept hash
(so its allow list, policy, thresholds and shadow mode apply) and records a detection marked
``retroactive``, naming the original request's time and ``content_ref``, when the list that just
gained the hash is among the matches. A :class:`~matching.models.RetroactiveCheck` row per (kept
submission, list, hash) makes that happen at most once.

Driven by Celery (``matching.retroactive_match``): every minute from beat, and after the commit of
any add or publication (the ``lists.changes.entries_entered`` signal, received in
``matching.apps``). Keeping the submissions, and the retention purge that removes expired ones,
are in :mod:`matching.kept` (the match service calls them; this module calls the match service).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Max
from django.utils import timezone
from django_scopes import scopes_disabled

from hub.audit import Actor
from hub.celery import app
from hub.models import Organization
from lists import changes
from lists.hashtypes import all_signal_types, get_signal_type
from matching.index import HammingIndex, Match
from matching.kept import RetroactiveOf
from matching.models import KeptCount, KeptSubmission, RetroactiveCheck, RetroactiveCursor
from sharing.policy import policy_of
from sharing.policy_rules import server_max_distance
from sharing.selectors import MatchableList, lists_matchable_by

logger = logging.getLogger(__name__)

ACTOR = Actor(system="retroactive matching")
"""Who a retroactive detection's audit line names."""

ENTERED_BATCH = 2000
"""Entries read from the "entered a list" feed per transaction."""

RUN_SECONDS = 50.0
"""A run stops taking new batches after this long: beat starts the next one a minute later."""

INDEX_REBUILD_AGE = timedelta(days=1)
"""A kept index is rebuilt from the database this long after its last build, dropping the rows
purged since (until then they stay in it, weighing nothing: see :class:`KeptIndex`)."""

INDEX_SAVE_AGE = timedelta(hours=1)
INDEX_SAVE_ROWS = 100_000
"""A kept index is saved to disk when it grew by this many rows or this long after its last save."""

INDEX_FETCH_ROWS = 50_000

_EPOCH = datetime(2020, 1, 1, tzinfo=UTC)


# --- the index of kept perceptual submissions --------------------------------------------------


def _hour(moment: datetime) -> int:
    return max(0, int((moment - _EPOCH).total_seconds() // 3600))


class KeptIndex:
    """The kept submissions of one perceptual type in a :class:`HammingIndex` (exact recall).

    A row's id is the kept submission's id and its class the hour it expires, so a search
    weighs expired rows 0 and never returns them (the caller still reads the rows' exact
    expiry). Kept submissions are only ever added (a refresh keeps its id and moves its expiry
    later: the index keeps the earlier hour until its next rebuild, so a refreshed submission
    that outlives it is found again after the daily rebuild at the latest); purged rows stay
    until the rebuild, weighing nothing. New rows are read by id after ``max_id``.

    Saved under ``HASHHUB_RETROACTIVE_INDEX_DIR/<type>`` (memory-mapped on load) with a small
    state file, ``<type>.json``, written after the snapshot.
    """

    def __init__(self, name: str, *, directory: Path | None = None) -> None:
        signal_type = get_signal_type(name)
        self.name = name
        self.bits = signal_type.bits
        # The most any organisation's match of this type may reach (what the index supports,
        # lowered by the hub's setting): each organisation's own threshold is its match's.
        self.radius = min(signal_type.max_distance, server_max_distance(name))
        self.directory = directory
        self.index = HammingIndex(bits=self.bits, max_radius=self.radius)
        self.max_id = 0
        self.max_class = 0
        self.built_at = timezone.now()
        self.saved_at: datetime | None = None
        self.unsaved_rows = 0

    def __len__(self) -> int:
        return len(self.index)

    # The rows -------------------------------------------------------------------------------

    def add_rows(self, ids: np.ndarray, codes: np.ndarray, classes: np.ndarray) -> None:
        if len(ids) == 0:
            return
        self.index.add(ids, codes, classes)
        self.max_id = max(self.max_id, int(ids.max()))
        self.max_class = max(self.max_class, int(classes.max()))
        self.unsaved_rows += len(ids)

    def catch_up(self) -> int:
        """Add the kept submissions of this type made since ``max_id``; returns how many.

        An empty index (a first use or the daily rebuild) is built in one go from every row,
        which is several times faster than adding them a page at a time.
        """
        fresh = len(self.index) == 0 and self.max_id == 0
        parts: list[tuple[np.ndarray, ...]] = []
        added = 0
        with scopes_disabled():
            while True:
                rows = list(
                    KeptSubmission.objects.filter(signal_type=self.name, pk__gt=self.max_id)
                    .order_by("pk")
                    .values_list("pk", "value", "expires_at")[:INDEX_FETCH_ROWS]
                )
                if not rows:
                    break
                added += len(rows)
                arrays = self._arrays(rows)
                if fresh:
                    parts.append(arrays)
                    self.max_id = int(arrays[0].max())
                else:
                    self.add_rows(*arrays)
        if parts:
            ids, codes, classes = (np.concatenate(column) for column in zip(*parts, strict=True))
            self.index = HammingIndex.build(
                ids, codes, bits=self.bits, max_radius=self.radius, classes=classes
            )
            self.max_class = int(classes.max())
            self.unsaved_rows = len(ids)
        return added

    def _arrays(self, rows: list[tuple[int, Any, datetime]]) -> tuple[np.ndarray, ...]:
        ids = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
        codes = np.frombuffer(b"".join(bytes(row[1]) for row in rows), dtype=np.uint8)
        classes = np.fromiter((_hour(row[2]) for row in rows), dtype=np.int64, count=len(rows))
        return ids, codes.reshape(len(rows), self.bits // 8), classes

    # Searching ------------------------------------------------------------------------------

    def search(self, codes: np.ndarray, *, now: datetime, threads: int = 1) -> list[list[Match]]:
        """For each code, the (kept id, distance) of every unexpired row within the radius."""
        if len(codes) == 0:
            return []
        weights = np.zeros(self.max_class + 1, dtype=np.int64)
        weights[min(_hour(now), self.max_class + 1) :] = 1
        if threads <= 1 or len(codes) < 64:
            found = self.index.search_bounded(codes, self.radius, weights=weights)
            return [f.hits for f in found]
        # numpy releases the GIL in the candidate gathers and popcounts, so threads scale.
        parts = np.array_split(codes, threads * 8)
        with ThreadPoolExecutor(threads) as pool:
            results = pool.map(
                lambda part: self.index.search_bounded(part, self.radius, weights=weights), parts
            )
            return [f.hits for part in results for f in part]

    # Persistence ----------------------------------------------------------------------------

    def _paths(self) -> tuple[Path, Path]:
        if self.directory is None:
            raise ValueError("this kept index has no directory")
        return self.directory / self.name, self.directory / f"{self.name}.json"

    def save(self) -> None:
        snapshot, state = self._paths()
        self.index.save(snapshot)
        staged = state.with_suffix(".json.tmp")
        staged.write_text(
            json.dumps(
                {
                    "max_id": self.max_id,
                    "max_class": self.max_class,
                    "built_at": self.built_at.isoformat(),
                }
            )
        )
        os.replace(staged, state)
        self.saved_at = timezone.now()
        self.unsaved_rows = 0

    @classmethod
    def load(cls, name: str, *, directory: Path) -> KeptIndex:
        """The saved index (raises ValueError if it is missing or unusable)."""
        kept = cls(name, directory=directory)
        snapshot, state = kept._paths()
        try:
            saved = json.loads(state.read_text())
            kept.max_id, kept.max_class = int(saved["max_id"]), int(saved["max_class"])
            kept.built_at = datetime.fromisoformat(saved["built_at"])
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ValueError(f"kept index state {state} is unusable: {error}") from error
        kept.index = HammingIndex.load(snapshot, mmap=True, bits=kept.bits, max_radius=kept.radius)
        kept.saved_at = timezone.now()
        return kept

    def maybe_save(self) -> None:
        if self.directory is None or not self.unsaved_rows:
            return
        old = self.saved_at is None or timezone.now() - self.saved_at >= INDEX_SAVE_AGE
        if old or self.unsaved_rows >= INDEX_SAVE_ROWS:
            self.save()


_INDEXES: dict[str, KeptIndex] = {}


def kept_index(name: str) -> KeptIndex:
    """This process's kept index of a perceptual type, loaded (or rebuilt) and caught up."""
    directory = Path(settings.HASHHUB_RETROACTIVE_INDEX_DIR)
    kept = _INDEXES.get(name)
    if kept is None or kept.directory != directory:
        try:
            kept = KeptIndex.load(name, directory=directory)
        except ValueError:
            kept = KeptIndex(name, directory=directory)
        with scopes_disabled():
            newest = KeptSubmission.objects.aggregate(newest=Max("pk"))["newest"] or 0
        if kept.max_id > newest:
            # A snapshot ahead of the database (restored from a backup, or another database's)
            # would never take in the rows below its ``max_id``: build it again from the rows.
            kept = KeptIndex(name, directory=directory)
    if timezone.now() - kept.built_at >= INDEX_REBUILD_AGE:
        kept = KeptIndex(name, directory=directory)  # read again from the rows that are left
    _INDEXES[name] = kept
    kept.catch_up()
    kept.maybe_save()
    return kept


def kept_indexes_reset() -> None:
    """Forget this process's kept indexes (tests; the next use loads or rebuilds them)."""
    _INDEXES.clear()


# --- the matcher -----------------------------------------------------------------------------


def retroactive_run(*, seconds: float = RUN_SECONDS) -> int:
    """Match the entries that entered lists since the last run against kept submissions, in
    change order, batch by batch, each batch in one transaction with the cursor's advance.

    One run at a time (the cursor row is locked; a second run finds it taken and returns).
    Returns how many retroactive detections it recorded. Side effects: detections with their
    audit lines and webhooks (after each batch commits), RetroactiveCheck rows, the cursor, the
    kept indexes on disk.
    """
    started = time.monotonic()
    raised = 0
    with scopes_disabled():
        RetroactiveCursor.objects.get_or_create(pk=1)
    while True:
        with transaction.atomic(), scopes_disabled():
            cursor = RetroactiveCursor.objects.select_for_update(skip_locked=True).filter(pk=1)
            held = cursor.first()
            if held is None:
                return raised  # another run holds it
            entered, upto = changes.entries_entered_since(after=held.after, limit=ENTERED_BATCH)
            raised += _entered_process(entered, now=timezone.now())
            if upto != held.after:
                RetroactiveCursor.objects.filter(pk=1).update(after=upto, updated=timezone.now())
        if len(entered) < ENTERED_BATCH or time.monotonic() - started > seconds:
            return raised


def _threads() -> int:
    return max(1, min(settings.HASHHUB_RETROACTIVE_THREADS, os.cpu_count() or 1))


def _candidates(
    entered: list[changes.EnteredEntry], now: datetime
) -> dict[int, list[changes.EnteredEntry]]:
    """Kept submission id → the entered entries near it (not yet read: expiry, org)."""
    near: dict[int, list[changes.EnteredEntry]] = defaultdict(list)
    by_type: dict[str, list[changes.EnteredEntry]] = defaultdict(list)
    for row in entered:
        by_type[row.signal_type].append(row)
    kinds = {t.name: t.kind for t in all_signal_types()}
    for name, rows in by_type.items():
        if kinds.get(name) == "perceptual":
            codes = np.frombuffer(b"".join(r.value for r in rows), dtype=np.uint8)
            index = kept_index(name)
            hits = index.search(codes.reshape(len(rows), -1), now=now, threads=_threads())
            for row, found in zip(rows, hits, strict=True):
                for kept_id, _ in found:
                    near[kept_id].append(row)
            continue
        by_value: dict[bytes, list[changes.EnteredEntry]] = defaultdict(list)
        for row in rows:
            by_value[row.value].append(row)
        for kept_id, value in KeptSubmission.objects.filter(
            signal_type=name, value__in=list(by_value), expires_at__gt=now
        ).values_list("pk", "value"):
            near[kept_id].extend(by_value[bytes(value)])
    return near


def _entered_process(entered: list[changes.EnteredEntry], *, now: datetime) -> int:
    """Re-match the kept submissions the entered entries name; returns the detections made."""
    if not entered:
        return 0
    near = _candidates(entered, now)
    if not near:
        return 0
    kept_rows = list(
        KeptSubmission.objects.filter(pk__in=list(near), expires_at__gt=now)
        .select_related("organization")
        .order_by("pk")
    )
    checked = set(
        RetroactiveCheck.objects.filter(kept_id__in=[k.pk for k in kept_rows]).values_list(
            "kept_id", "hash_list_id", "hash_id"
        )
    )
    by_org: dict[int, list[KeptSubmission]] = defaultdict(list)
    for kept in kept_rows:
        by_org[kept.organization_id].append(kept)
    raised = 0
    for group in by_org.values():
        org = group[0].organization
        # An organisation being deleted (hub.offboarding) is told of nothing new.
        if org.deleted_at is not None or policy_of(org=org).retroactive_days <= 0:
            continue
        lists = lists_matchable_by(org=org)
        for kept in group:
            news = _news(kept, near[kept.pk], lists, checked)
            if news:
                raised += _rematch(org, kept, news, lists)
    return raised


def _news(
    kept: KeptSubmission,
    rows: list[changes.EnteredEntry],
    lists: dict[int, MatchableList],
    checked: set[tuple[int, int, int]],
) -> list[changes.EnteredEntry]:
    """The entries that are news to this kept submission: in a list its organisation matches,
    in the view it matches it through, after the request, not checked before."""
    seen: set[tuple[int, int]] = set()
    news = []
    for row in rows:
        holder = lists.get(row.list_pk)
        key = (row.list_pk, row.hash_id)
        if (
            holder is None
            or holder.published_view != row.published
            or row.seq <= kept.seen_seq
            or (kept.pk, *key) in checked
            or key in seen
        ):
            continue
        seen.add(key)
        news.append(row)
    return news


def _rematch(
    org: Organization,
    kept: KeptSubmission,
    news: list[changes.EnteredEntry],
    lists: dict[int, MatchableList],
) -> int:
    from matching import services

    signal_type = get_signal_type(kept.signal_type)
    value = bytes(kept.value)
    of = RetroactiveOf(
        requested_at=kept.requested_at,
        entered=frozenset(
            (lists[row.list_pk].public_id, signal_type.to_text(row.value)) for row in news
        ),
    )
    with transaction.atomic():
        outcome = services.match_hashes(
            org=org,
            items=[{"type": signal_type.name, "value": signal_type.to_text(value)}],
            actor=ACTOR,
            content_ref=kept.content_ref,
            retroactive_of=of,
        )
        RetroactiveCheck.objects.bulk_create(
            [
                RetroactiveCheck(
                    kept=kept,
                    hash_list_id=row.list_pk,
                    hash_id=row.hash_id,
                    detection=outcome.detection,
                )
                for row in news
            ],
            ignore_conflicts=True,
        )
    return 1 if outcome.detection is not None else 0


# --- driving it ----------------------------------------------------------------------------------

RUN_TASK = "matching.retroactive_match"
_QUEUED_KEY = "matching:retroactive-queued"


def _queue_run() -> None:
    # Nothing to do while no organisation keeps anything (the common case: no task per add).
    with scopes_disabled():
        if not KeptCount.objects.filter(kept__gt=0).exists():
            return
    # Commits in quick succession (an import's pages) queue one run, which reads them all;
    # beat's run a minute later covers any that came just after it started.
    if cache.add(_QUEUED_KEY, 1, timeout=5):
        app.send_task(RUN_TASK)


def _entries_entered(**_: Any) -> None:
    # robust: a broker outage after the commit is logged, never raised into the adding request.
    transaction.on_commit(_queue_run, robust=True)


def connect() -> None:
    """Run the matcher after each commit that made entries enter a list (from matching.apps)."""
    changes.entries_entered.connect(_entries_entered, dispatch_uid="matching.retroactive")
