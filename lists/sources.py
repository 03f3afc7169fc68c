"""Upstream verified sources: registering them and running their imports.

An import run asks the source's adapter (lists.importers) for pages from the stored checkpoint
on, and applies each page *and* its checkpoint in one transaction. So:

- killing the worker at any moment loses at most the page in flight, whose checkpoint was not
  stored; the next run fetches it again, and applying a page twice gives what applying it once
  gives (an add of a live entry or a removal of an absent one changes nothing);
- a page the adapter cannot read fails the run with its code and leaves the checkpoint where
  the last good page put it;
- one run at a time per source, by a PostgreSQL advisory lock held by the running connection:
  a worker that dies releases it with its connection, and the next run marks the dead one's
  row failed ("abandoned").

In a worker (not inside a caller's transaction) a helper process, forked by the run, works one
page ahead: it fetches and parses the next page and upserts its hashes on its own connection
while the runner applies this one. A process, not a thread: the runner spends most of a page
waiting for PostgreSQL, and each time it got an answer it waited again for a thread that held
the interpreter lock to parse XML.

Records with an upstream key (NCMEC's member and entry id, a peer hub's list and hash) are
tracked in SourceRecord: a later record with the same key replaces the hashes it contributes,
a deletion by key removes them, and a hash leaves a list only when no record of that list still
holds it. Snapshot feeds key each row by its hash; when the last page of a snapshot is applied,
every record the snapshot did not name is removed the same way.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import gc
import logging
import os
import pickle
import signal
import threading
from collections import defaultdict
from collections.abc import Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from functools import lru_cache
from typing import Any, NamedTuple, NoReturn

import psycopg
from django.db import connection, connections, transaction
from django.utils import timezone
from django_scopes import scopes_disabled

from hub.audit import SYSTEM, Actor, audit
from hub.errors import ServiceError
from hub.lib.ids import new_ordered_public_ids
from lists.hashtypes import HashParseError, SignalType, get_signal_type
from lists.importers import adapter_class
from lists.importers.base import (
    ADD,
    REMOVE,
    Credentials,
    Page,
    Record,
    SourceError,
)
from lists.importers.http import Http
from lists.models import HashList, ImportRun, ImportRunError, Source, SourceRecord
from lists.services import (
    Provenance,
    _advance_sequence,
    _count_changes,
    _lock_sequence,
    _tombstone,
    normalise_labels,
    source_lists_created,
)
from lists.source_schedules import check_schedule, schedule_sync

logger = logging.getLogger(__name__)

MAX_ERRORS_KEPT = 10_000
"""Per-record errors stored per run; the count goes on past it."""

HEARTBEAT_STALE = timedelta(minutes=10)


def _analyze_due(page_number: int) -> bool:
    """A large import changes the tables faster than autovacuum re-reads their statistics:
    refresh them on pages 0, 1, 2, 4, 8, … so that no table grows more than twice over between
    two reads of it. Every statement of a page looks its rows up through an index whatever the
    statistics say (see _PAGE_SETTINGS); what they still steer is left to the planner, and each
    ANALYZE of million-row tables costs most of a second of a core the import needs."""
    return page_number & (page_number - 1) == 0


def _analyze() -> None:
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE lists_hash, lists_entry, lists_sourcerecord")


def _analyze_alone() -> None:
    """_analyze on this thread's own connection, then closed (a helper process's thread)."""
    try:
        _analyze()
    except Exception:  # statistics are an optimisation: the import goes on without them
        logger.exception("refreshing statistics during an import failed")
    finally:
        connection.close()


_LOCK_NAMESPACE = 0x48485352  # "HHSR": our advisory-lock class for source runs


# --- registering ----------------------------------------------------------------------------


def _clean_config(kind: str, config: Mapping[str, Any]) -> dict[str, Any]:
    if kind not in Source.Kind.values:
        raise ServiceError(
            "invalid_kind",
            f"kind must be one of: {', '.join(Source.Kind.values)}.",
            {"allowed": list(Source.Kind.values)},
        )
    if not isinstance(config, Mapping):
        raise ServiceError("bad_config", "config must be an object.")
    try:
        return adapter_class(kind).check_config(config)
    except SourceError as error:
        raise ServiceError(error.code, error.message) from None


def source_lists(source: Source) -> dict[str, HashList]:
    """The source's list per category, made on first use ("<name> CSAM", "<name> SE")."""
    # Source lists belong to no organisation: outside every tenant scope.
    made = []
    with scopes_disabled():
        lists = {hl.category: hl for hl in HashList.objects.filter(source=source)}
        for category, label in HashList.Category.choices:
            if category not in lists:
                lists[category], created = HashList.objects.get_or_create(
                    source=source,
                    category=category,
                    defaults={"name": f"{source.name} {label}"[:120], "organization": None},
                )
                if created:
                    made.append(lists[category])
    if made:
        # Entitled organisations gain the new lists in the same transaction (sharing listens).
        source_lists_created.send(sender=Source, source=source, hash_lists=made)
    return lists


def _audit_source(source: Source, action: str, actor: Actor, **metadata: Any) -> None:
    audit(
        actor=actor,
        action=action,
        organization=None,
        target_type="source",
        target_id=source.public_id,
        metadata={"name": source.name, **metadata},
    )


@transaction.atomic
def source_create(
    *,
    name: str,
    kind: str,
    config: Mapping[str, Any],
    default_category: str = HashList.Category.CSAM,
    access: str = Source.Access.GRANTED,
    interval_minutes: int = 0,
    cron: str = "",
    description: str = "",
    actor: Actor,
) -> Source:
    """Register an upstream source and make its CSAM and SE lists. Audited (no credentials)."""
    name = name.strip()
    if not name or len(name) > 120:
        raise ServiceError("invalid_name", "Give the source a name of 1 to 120 characters.")
    if Source.objects.filter(name=name).exists():
        raise ServiceError("name_taken", "A source with this name exists already.", status=409)
    if default_category not in HashList.Category.values:
        raise ServiceError("invalid_category", "category must be one of: csam, se.")
    if access not in Source.Access.values:
        raise ServiceError("invalid_access", "access must be one of: all, granted.")
    cron = check_schedule(interval_minutes, cron)
    source = Source.objects.create(
        name=name,
        kind=kind,
        config=_clean_config(kind, config),
        default_category=default_category,
        access=access,
        interval_minutes=interval_minutes,
        cron=cron,
        description=description.strip(),
    )
    source_lists(source)
    schedule_sync(source)
    _audit_source(source, "source.created", actor, kind=kind, access=access)
    return source


_EDITABLE = {"description", "enabled", "interval_minutes", "cron", "config", "default_category"}


@transaction.atomic
def source_update(*, source: Source, actor: Actor, **changes: Any) -> Source:
    """Change a source's settings (not its access: sharing.services.source_access_set). Audited."""
    unknown = set(changes) - _EDITABLE
    if unknown:
        raise ServiceError("invalid_field", f"Cannot change: {', '.join(sorted(unknown))}.")
    if "config" in changes:
        changes["config"] = _clean_config(source.kind, changes["config"])
    if changes.get("default_category", source.default_category) not in HashList.Category.values:
        raise ServiceError("invalid_category", "category must be one of: csam, se.")
    schedule = {"interval_minutes", "cron"} & set(changes)
    if schedule:
        cron = check_schedule(
            int(changes.get("interval_minutes", source.interval_minutes)),
            changes.get("cron", source.cron),
        )
        if "cron" in changes:
            changes["cron"] = cron
    for name, value in changes.items():
        setattr(source, name, value)
    source.save()
    if schedule or "enabled" in changes:
        schedule_sync(source)
    _audit_source(source, "source.updated", actor, fields=sorted(changes))
    return source


# --- runs -----------------------------------------------------------------------------------


def _enqueue(run: ImportRun) -> None:
    from lists.tasks import source_run

    transaction.on_commit(lambda: source_run.delay(run.pk))


@transaction.atomic
def run_create(
    *, source: Source, trigger: str, enqueue: bool = True, actor: Actor | None = None
) -> ImportRun:
    """Queue an import of ``source`` (a Celery task after commit), or return the one pending.

    ``enqueue=False`` makes the row only, for a caller that runs it itself (fetchsource). A new
    run is audited (``source.run_requested``) as ``actor``, or as the trigger.
    """
    Source.objects.select_for_update().filter(pk=source.pk).first()
    pending = (
        ImportRun.objects.filter(
            source=source, status__in=[ImportRun.Status.QUEUED, ImportRun.Status.RUNNING]
        )
        .order_by("created")
        .first()
    )
    if pending is not None and pending.status == ImportRun.Status.RUNNING and _try_lock(source):
        # Nobody holds the source's lock, so the worker of this "running" run is gone.
        _unlock(source)
        ImportRun.objects.filter(pk=pending.pk).update(
            status=ImportRun.Status.FAILED,
            finished_at=timezone.now(),
            error_code="abandoned",
            error_message="The worker running this import stopped; a later run resumes it.",
        )
        pending = None
    if pending is not None and not _is_stale(pending):
        return pending
    run = ImportRun.objects.create(
        source=source, trigger=trigger[:200], checkpoint_before=source.checkpoint
    )
    _audit_source(
        source, "source.run_requested", actor or Actor(system=trigger[:200]), run=run.public_id
    )
    if enqueue:
        _enqueue(run)
    return run


def _is_stale(run: ImportRun) -> bool:
    beat = run.heartbeat_at or run.created
    return timezone.now() - beat > HEARTBEAT_STALE


def _try_lock(source: Source) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [_LOCK_NAMESPACE, source.pk])
        return bool(cursor.fetchone()[0])


def _unlock(source: Source) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [_LOCK_NAMESPACE, source.pk])


@dataclass
class PageResult:
    seen: int = 0
    added: int = 0
    updated: int = 0
    removed: int = 0
    errors: list[tuple[str, str, str]] = field(default_factory=list)


def run_execute(
    *,
    run_id: int,
    http: Http | None = None,
    credentials: Credentials | None = None,
    on_page: Any = None,
) -> ImportRun:
    """Run a queued import in this process (the Celery task's body; fetchsource calls it too).

    Returns the finished run: ``succeeded``, or ``failed`` with ``error_code`` and
    ``error_message``. Another process already running the same source: the run fails with
    ``source_busy`` and changes nothing. ``on_page(run)`` is called after each applied page.
    """
    # What the process holds before the run stays out of the cyclic collector's way until the
    # run ends (its full collections walk all of it; a page makes thousands of objects).
    gc.freeze()
    try:
        with scopes_disabled():
            return _run_execute(run_id, http, credentials, on_page)
    finally:
        gc.unfreeze()


def _run_execute(
    run_id: int, http: Http | None, credentials: Credentials | None, on_page: Any
) -> ImportRun:
    run = ImportRun.objects.select_related("source").get(pk=run_id)
    source = run.source
    if run.status not in (ImportRun.Status.QUEUED, ImportRun.Status.RUNNING):
        return run
    if not _try_lock(source):
        # Someone else is running this source (maybe this very run): leave the row alone.
        raise ServiceError(
            "source_busy", "Another import of this source is running; try again later.", status=409
        )
    client = http or Http()
    try:
        # We hold the lock: any other "running" run of this source belongs to a dead worker.
        ImportRun.objects.filter(source=source, status=ImportRun.Status.RUNNING).exclude(
            pk=run.pk
        ).update(
            status=ImportRun.Status.FAILED,
            finished_at=timezone.now(),
            error_code="abandoned",
            error_message="The worker running this import stopped; a later run resumed it.",
        )
        source.refresh_from_db()
        now = timezone.now()
        run.status = ImportRun.Status.RUNNING
        run.started_at = now
        run.heartbeat_at = now
        run.checkpoint_before = source.checkpoint
        run.save(update_fields=["status", "started_at", "heartbeat_at", "checkpoint_before"])
        Source.objects.filter(pk=source.pk).update(last_run_at=now)
        adapter = adapter_class(source.kind)(
            config=source.config, credentials=credentials or Credentials(), http=client
        )
        lists = source_lists(source)
        pages = adapter.pages(dict(source.checkpoint))
        in_order = connection.in_atomic_block
        prepared: Generator[_Prepared, None, None]
        if in_order:
            # Inside a caller's transaction (tests): a second connection would not see its
            # rows and could wait on its locks, so everything happens here, in order.
            prepared = (_prepare(source, page) for page in pages)
        else:
            prepared = _prepared_in_child(source, lists, pages)
        try:
            for number, ready in enumerate(prepared):
                if in_order and _analyze_due(number):
                    _analyze()  # the helper process does this otherwise, off the critical path
                _apply_page_and_checkpoint(source, lists, run, ready)
                if on_page is not None:
                    on_page(run)
        finally:
            # Stop the helper now, not whenever the generator is collected; it closes the
            # adapter's pages itself (they were only ever iterated there).
            prepared.close()
            close_pages = getattr(pages, "close", None)
            if close_pages is not None and in_order:
                close_pages()
    except SourceError as error:
        return _finish(run, error.code, error.message)
    except Exception:
        logger.exception("import run %s of source %s failed", run.public_id, source.name)
        return _finish(run, "internal_error", "The import stopped on an unexpected error.")
    finally:
        if http is None:
            client.close()
        _unlock(source)
    return _finish(run, "", "")


def _finish(run: ImportRun, code: str, message: str) -> ImportRun:
    now = timezone.now()
    run.status = ImportRun.Status.FAILED if code else ImportRun.Status.SUCCEEDED
    run.finished_at = now
    run.error_code = code
    run.error_message = message
    source = Source.objects.get(pk=run.source_id)
    run.checkpoint_after = source.checkpoint
    run.save()
    if code:
        Source.objects.filter(pk=source.pk).update(last_error=f"{code}: {message}"[:2000])
    else:
        Source.objects.filter(pk=source.pk).update(last_success_at=now, last_error="")
    return run


@transaction.atomic
def _apply_page_and_checkpoint(
    source: Source, lists: Mapping[str, HashList], run: ImportRun, prepared: _Prepared
) -> None:
    page = prepared.page
    result = _apply_prepared(source, lists, prepared, run)
    Source.objects.filter(pk=source.pk).update(checkpoint=page.checkpoint)
    source.checkpoint = page.checkpoint
    kept = ImportRunError.objects.filter(run=run).count()
    room = max(0, MAX_ERRORS_KEPT - kept)
    ImportRunError.objects.bulk_create(
        ImportRunError(run=run, position=pos[:200], code=code[:64], message=message)
        for pos, code, message in result.errors[:room]
    )
    run.pages += 1
    run.seen += result.seen
    run.added += result.added
    run.updated += result.updated
    run.removed += result.removed
    run.rejected += len(result.errors)
    if page.expected is not None:
        run.expected = page.expected
    run.heartbeat_at = timezone.now()
    run.save(
        update_fields=[
            "pages",
            "seen",
            "added",
            "updated",
            "removed",
            "rejected",
            "expected",
            "heartbeat_at",
        ]
    )


# --- applying a page ------------------------------------------------------------------------


@dataclass
class _Wanted:
    """One record, parsed: the list it goes to and its canonical hashes."""

    key: str
    op: str
    category: str
    labels: list[str]
    hashes: list[tuple[str, bytes]]


_CATEGORIES = frozenset(HashList.Category.values)


@lru_cache(maxsize=64)
def _signal_type(name: str) -> SignalType:
    """The signal type an upstream names, looked up once per name (not once per hash)."""
    return get_signal_type(name.strip().lower())


@lru_cache(maxsize=1024)
def _labels(raw: tuple[str, ...]) -> list[str]:
    """normalise_labels, once per distinct label set (upstreams repeat a handful of them)."""
    return normalise_labels(raw)


def _parse(source: Source, record: Record, result: PageResult) -> list[_Wanted]:
    category = record.category or source.default_category
    if category not in _CATEGORIES:
        result.errors.append(
            (record.position, "invalid_category", f"Unknown category {category!r}.")
        )
        return []
    if record.op not in (ADD, REMOVE):
        result.errors.append((record.position, "invalid_op", f"Unknown operation {record.op!r}."))
        return []
    try:
        # A copy: _Wanted's labels must not alias the cached list.
        labels = list(_labels(tuple(record.labels)))
    except ServiceError as error:
        result.errors.append((record.position, error.code, error.message))
        labels = []
    except TypeError:  # an unhashable label: let normalise_labels say what is wrong with it
        try:
            labels = normalise_labels(record.labels)
        except ServiceError as error:
            result.errors.append((record.position, error.code, error.message))
            labels = []
    hashes: list[tuple[str, bytes]] = []
    for signal_name, text in record.hashes:
        try:
            signal_type = _signal_type(signal_name)
            hashes.append((signal_type.name, signal_type.parse(text)))
        except HashParseError as error:
            result.errors.append((record.position, error.code, f"{signal_name}: {error.message}"))
        except ServiceError as error:
            result.errors.append((record.position, error.code, error.message))
    if record.key:
        if record.op == ADD and not hashes:
            if not record.hashes:
                result.errors.append(
                    (record.position, "no_hashes", "The record carries no hash to add.")
                )
            return []
        return [_Wanted(record.key, record.op, category, labels, hashes)]
    # Unkeyed: each hash stands alone, keyed by itself (and its list) so that a snapshot can
    # tell which rows it named, and a removal releases exactly that hash.
    return [
        _Wanted(f"{category}:{name}:{value.hex()}", record.op, category, labels, [(name, value)])
        for name, value in hashes
    ]


def _query(sql: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    """Run one statement on Django's own connection (so in the caller's transaction) and return
    its rows, binding parameters on the server.

    Server-side binding lets arrays travel in binary (``%(name)b``): building the text form of a
    bytea array escapes every byte in Python, which was the costliest part of a page's own work.
    Never prepared: a plan cached while the tables were small would outlive their growth.
    """
    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, params, prepare=False)
        return cursor.fetchall() if cursor.description is not None else []


# Upsert the merged set and read every id back in one round trip. RETURNING gives the new
# hashes; the look-up, made only for the others (COALESCE evaluates it only when RETURNING gave
# nothing), reads the statement's snapshot, so it finds the hashes that existed before; a hash
# another transaction committed meanwhile is in neither (see _hash_ids). Each look-up is a
# correlated subquery, so it goes through the unique index whatever the planner believes of the
# table's size (a join may hash the whole merged set when statistics lag); OFFSET 0 keeps the
# outer filter from being merged into the subquery with a copy of the look-up, which made it
# twice for every known hash. ``made`` tells the hashes this statement inserted.
_HASH_IDS = """
WITH q AS MATERIALIZED (
    SELECT * FROM unnest(%(types)b::text[], %(values)b::bytea[]) WITH ORDINALITY AS q(t, v, n)
), fresh AS (
    INSERT INTO lists_hash (signal_type, value)
    SELECT t, v FROM q ORDER BY n
    ON CONFLICT DO NOTHING
    RETURNING id, signal_type, value
)
SELECT n, id, made FROM (
    SELECT q.n, COALESCE(
               f.id,
               (SELECT h.id FROM lists_hash h WHERE h.signal_type = q.t AND h.value = q.v)
           ) AS id,
           f.id IS NOT NULL AS made
      FROM q LEFT JOIN fresh f ON f.signal_type = q.t AND f.value = q.v
    OFFSET 0
) AS known
WHERE id IS NOT NULL
"""

_HASH_IDS_READ = """
SELECT n, id FROM (
    SELECT q.n, (SELECT h.id FROM lists_hash h WHERE h.signal_type = q.t AND h.value = q.v) AS id
      FROM unnest(%(types)b::text[], %(values)b::bytea[]) WITH ORDINALITY AS q(t, v, n)
    OFFSET 0
) AS known
WHERE id IS NOT NULL
"""


def _hash_ids(
    pairs: Iterable[tuple[str, bytes]],
) -> tuple[dict[tuple[str, bytes], int], frozenset[int]]:
    """Ids of the given hashes in the merged set, inserting the new ones; and the ids of those
    it inserted (hashes no entry of any list can hold yet)."""
    # Sorted, so that two runs inserting the same new hashes take their locks in one order.
    wanted = sorted(set(pairs))
    if not wanted:
        return {}, frozenset()
    rows = _query(_HASH_IDS, {"types": [t for t, _ in wanted], "values": [v for _, v in wanted]})
    ids = {wanted[n - 1]: pk for n, pk, _ in rows}
    made = frozenset(pk for _, pk, inserted in rows if inserted)
    if len(ids) < len(wanted):
        # Committed by another transaction after this statement's snapshot was taken.
        missing = [pair for pair in wanted if pair not in ids]
        rows = _query(
            _HASH_IDS_READ, {"types": [t for t, _ in missing], "values": [v for _, v in missing]}
        )
        ids.update((missing[n - 1], pk) for n, pk in rows)
    return ids, made


@dataclass
class _Prepared:
    """A page parsed, and (when prepared ahead) planned: then the plan replaces the records."""

    page: Page
    result: PageResult
    wanted: dict[str, _Wanted]
    plan: _Plan | None = None  # made ahead, with the hashes' ids


class _Item(NamedTuple):
    """A record as the runner compares it with what its key held before (a tuple: a page
    makes a thousand of them, in the helper process that is the import's busiest)."""

    op: str
    list_pk: int
    hash_ids: list[int]  # sorted
    labels: list[str]


@dataclass
class _Plan:
    """What a page writes whatever the source's records held before: worked out with the hashes'
    ids, by the helper process while the runner applies the page before, down to the arrays of
    the statements, so that the runner only compares records and writes."""

    items: dict[str, _Item]
    keys: str  # every key, as an array literal (for the records look-up)
    added: dict[int, frozenset[int]]  # list pk -> the hash ids the page adds there
    add_rows: int
    add_arrays: dict[str, str]  # _ADD_ENTRIES's arrays
    upsert_arrays: dict[str, str]  # the records upsert's arrays


def _quoted(values: Iterable[str]) -> str:
    """A PostgreSQL array literal of any strings (each quoted, backslashes and quotes escaped)."""
    escaped = (v.replace("\\", "\\\\").replace('"', '\\"') for v in values)
    return "{" + ",".join(f'"{v}"' for v in escaped) + "}"


def _plan(
    wanted: Mapping[str, _Wanted],
    list_pks: Mapping[str, int],
    ids: Mapping[tuple[str, bytes], int],
    made: frozenset[int],
) -> _Plan:
    items: dict[str, _Item] = {}
    # Each distinct label set is numbered, and written once as an element of a text array
    # (upstreams repeat a handful of them); the id arrays need no quoting inside one.
    label_sets: dict[tuple[str, ...], int] = {}
    elements: list[str] = []
    adds: dict[int, dict[int, tuple[str, int]]] = defaultdict(dict)  # list -> hash -> type, set
    upsert_keys: list[str] = []
    upsert_lists: list[int] = []
    upsert_ids: list[str] = []
    upsert_labels: list[str] = []
    for key, item in wanted.items():
        list_pk = list_pks[item.category]
        if item.op == REMOVE:
            items[key] = _Item(item.op, list_pk, [], item.labels)
            continue
        labels = tuple(item.labels)
        number = label_sets.get(labels)
        if number is None:
            number = label_sets[labels] = len(label_sets) + 1
            elements.append(_quoted([_quoted(labels)])[1:-1])
        by_hash = adds[list_pk]
        for pair in item.hashes:
            by_hash[ids[pair]] = (pair[0], number)  # a later record's labels win
        hash_ids = sorted({ids[pair] for pair in item.hashes})
        items[key] = _Item(item.op, list_pk, hash_ids, item.labels)
        upsert_keys.append(key)
        upsert_lists.append(list_pk)
        upsert_ids.append('"{' + ",".join(map(str, hash_ids)) + '}"')
        upsert_labels.append(elements[number - 1])
    # The new entries in list, then hash order (the order of their change numbers).
    lists_column: list[int] = []
    ids_column: list[int] = []
    types_column: list[str] = []
    sets_column: list[int] = []
    for list_pk in sorted(adds):
        by_hash = adds[list_pk]
        ordered = sorted(by_hash)
        lists_column += [list_pk] * len(ordered)
        ids_column += ordered
        for hash_id in ordered:
            signal_type, number = by_hash[hash_id]
            types_column.append(signal_type)
            sets_column.append(number)
    return _Plan(
        items=items,
        keys=_quoted(wanted),
        added={list_pk: frozenset(by_hash) for list_pk, by_hash in adds.items()},
        add_rows=len(ids_column),
        add_arrays={
            "label_sets": "{" + ",".join(elements) + "}",
            "lists": _literal(lists_column),
            "ids": _literal(ids_column),
            "types": _literal(types_column),
            "label_set_of": _literal(sets_column),
            "public_ids": _literal(new_ordered_public_ids(len(ids_column))),
            "check": "{" + ",".join(["f" if i in made else "t" for i in ids_column]) + "}",
        },
        upsert_arrays={
            "keys": _quoted(upsert_keys),
            "lists": _literal(upsert_lists),
            "ids": "{" + ",".join(upsert_ids) + "}",
            "labels": "{" + ",".join(upsert_labels) + "}",
        },
    )


def _prepare(source: Source, page: Page, list_pks: Mapping[str, int] | None = None) -> _Prepared:
    """The page parsed; with ``list_pks`` (ahead of the runner), its hashes upserted and its
    plan made too, and the parsed records then dropped (the plan is what the runner needs)."""
    result = PageResult(errors=[(e.position, e.code, e.message) for e in page.errors])
    result.seen = len(page.records)
    wanted: dict[str, _Wanted] = {}
    for record in page.records:
        for item in _parse(source, record, result):
            wanted[item.key] = item  # a later record with the same key wins
    prepared = _Prepared(page, result, wanted)
    if list_pks is not None:
        prepared.plan = _planned(wanted, list_pks)
        prepared.wanted = {}
    return prepared


def _planned(wanted: Mapping[str, _Wanted], list_pks: Mapping[str, int]) -> _Plan:
    """The page's plan, its hashes added to the merged set first."""
    ids, made = _hash_ids(pair for item in wanted.values() for pair in item.hashes)
    return _plan(wanted, list_pks, ids, made)


# Of the database connections a forked helper inherits: kept referenced, never used or closed,
# since the socket is the runner's.
_INHERITED: list[Any] = []

# Room in the pipe for a whole prepared page, so that the helper goes on to the next one while
# the runner applies this one (Linux allows an unprivileged process up to 1 MiB).
_PIPE_BYTES = 1 << 20
_F_SETPIPE_SZ = 1031


def _prepared_in_child(
    source: Source, lists: Mapping[str, HashList], pages: Iterator[Page]
) -> Generator[_Prepared, None, None]:
    """What :func:`_prepared_ahead` makes, made by a forked helper process and read from a pipe.

    An upstream error of the helper is raised here after the pages it prepared before it;
    anything else it hit fails the run as an internal error (the helper logs it). Closing this
    generator early kills the helper; the helper also dies with the runner (a killed worker).
    When no process can be made, the pages are prepared here, in order.
    """
    read_end, write_end = os.pipe()
    with contextlib.suppress(OSError):
        fcntl.fcntl(write_end, _F_SETPIPE_SZ, _PIPE_BYTES)
    try:
        pid = os.fork()
    except OSError:
        os.close(read_end)
        os.close(write_end)
        logger.warning("no helper process for an import of %s; preparing in order", source.name)
        for number, page in enumerate(pages):
            if _analyze_due(number):
                _analyze()
            yield _prepare(source, page)
        return
    if pid == 0:  # pragma: no cover - the helper process (its work is _prepared_ahead's)
        os.close(read_end)
        _helper_main(source, lists, pages, write_end)
    os.close(write_end)
    finished = False
    try:
        with os.fdopen(read_end, "rb") as stream:
            while True:
                try:
                    kind, value = pickle.load(stream)  # noqa: S301 - our own forked child
                except EOFError:
                    raise RuntimeError("the import's helper process stopped unexpectedly") from None
                if kind == "page":
                    yield value
                elif kind == "failed":
                    raise SourceError(*value)
                elif kind == "crashed":
                    raise RuntimeError(f"the import's helper process failed: {value}")
                else:
                    finished = True
                    return
    finally:
        if not finished:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)  # it may be waiting for upstream
        os.waitpid(pid, 0)


def _helper_main(
    source: Source, lists: Mapping[str, HashList], pages: Iterator[Page], fd: int
) -> NoReturn:  # pragma: no cover
    """The forked helper: prepare the pages into the pipe, then leave without any clean-up
    (the runner's connections, sockets and files are shared with it: touch none of them)."""
    status = 1
    try:
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        for number in _PLAIN_SIGNALS:  # not the worker's handlers (a warm shutdown, say)
            signal.signal(number, signal.SIG_DFL)
        for alias in connections:
            wrapper = connections[alias]
            if wrapper.connection is not None:
                _INHERITED.append(wrapper.connection)
                wrapper.connection = None  # a new one on first use
        # Everything inherited (the whole Django process) out of the cyclic collector's way:
        # its full collections, walking all of it, took half of the time of parsing a page.
        gc.freeze()
        with os.fdopen(fd, "wb") as out:
            message: tuple[str, Any]
            try:
                for prepared in _prepared_ahead(source, lists, pages):
                    # The runner needs the page's checkpoint and flags, not its raw records.
                    prepared.page = replace(prepared.page, records=[])
                    pickle.dump(("page", prepared), out, protocol=pickle.HIGHEST_PROTOCOL)
                    out.flush()
                message = ("done", None)
            except SourceError as error:
                message = ("failed", (error.code, error.message))
            except Exception as error:
                logger.exception("the helper process of an import of %s failed", source.name)
                message = ("crashed", f"{type(error).__name__}: {error}")
            pickle.dump(message, out, protocol=pickle.HIGHEST_PROTOCOL)
        status = 0
    except BaseException:  # noqa: S110 - the runner stopped reading (or killed us): just go
        pass
    finally:
        os._exit(status)


_PR_SET_PDEATHSIG = 1
_PLAIN_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1)


def _prepared_ahead(
    source: Source, lists: Mapping[str, HashList], pages: Iterator[Page]
) -> Iterator[_Prepared]:
    """Each page parsed, its hashes upserted (on this process's own database connection) and
    the page planned.

    Run by the helper process one page ahead of the runner, so that PostgreSQL upserts the next
    page's hashes (on a second backend, in autocommit) while the runner's transaction applies
    this one. Committing hashes early changes nothing anyone sees: a hash is matched, listed
    and exported only through an entry, and entries come with their page's transaction.
    It also has the tables' statistics refreshed when due (see _analyze_due), by a
    thread on a connection of its own, so that neither the runner nor this waits for that.
    """
    analyzing: threading.Thread | None = None
    list_pks = {category: hl.pk for category, hl in lists.items()}
    try:
        _query("SET jit = off", {})  # see _PAGE_SETTINGS
        for number, page in enumerate(pages):
            if _analyze_due(number) and (analyzing is None or not analyzing.is_alive()):
                analyzing = threading.Thread(target=_analyze_alone, name="analyze", daemon=True)
                analyzing.start()
            yield _prepare(source, page, list_pks)
    finally:
        close = getattr(pages, "close", None)
        if close is not None:
            close()  # here, where it is iterated
        connection.close()  # this process's own connection


# For the page's transaction only. The planner's guesses for array look-ups are high enough to
# start JIT compilation, tens of milliseconds a statement for look-ups that take one. And every
# statement of a page looks rows up by their keys through an index; while an import grows its
# tables faster than their statistics follow, the planner rates a scan of a whole table (the
# list's records, say) cheaper than a thousand index look-ups, so a page cost time in proportion
# to everything imported before it.
_PAGE_SETTINGS = "SELECT set_config('jit', 'off', true), set_config('enable_seqscan', 'off', true)"


def _apply_prepared(
    source: Source, lists: Mapping[str, HashList], prepared: _Prepared, run: ImportRun
) -> PageResult:
    page, result, plan = prepared.page, prepared.result, prepared.plan
    _query(_PAGE_SETTINGS, {})
    if plan is None:
        plan = _planned(prepared.wanted, {category: hl.pk for category, hl in lists.items()})
    old = _records(source, plan.keys) if plan.items else {}
    by_pk = {hl.pk: hl for hl in lists.values()}
    released: dict[int, set[int]] = defaultdict(set)  # list pk -> hash ids maybe to remove
    relabels: dict[int, dict[int, list[str]]] = defaultdict(dict)
    deletes: list[str] = []
    for key, item in plan.items.items():
        previous = old.get(key)
        if previous is None:
            continue
        released[previous.list_pk].update(previous.hash_ids)
        if item.op == REMOVE:
            deletes.append(key)
        elif (
            previous.list_pk != item.list_pk
            or sorted(previous.hash_ids) != item.hash_ids
            or previous.labels != item.labels
        ):
            result.updated += 1
            if previous.labels != item.labels:
                # Entries already live keep their row: their labels follow the update.
                relabels[item.list_pk].update(dict.fromkeys(item.hash_ids, item.labels))
    _records_write(source, plan, deletes, page.snapshot)
    who = Provenance(None, None, f"source {source.name} (run {run.public_id})"[:200])
    result.added += _add_entries(by_pk, plan, who)
    for list_pk, labels_by_hash in relabels.items():
        _relabel(by_pk[list_pk], labels_by_hash)
    for list_pk, maybe_gone in released.items():
        kept = plan.added.get(list_pk, frozenset())
        result.removed += _release(by_pk.get(list_pk), maybe_gone - kept, who)
    if page.snapshot and page.snapshot_complete:
        result.removed += _sweep(source, by_pk, page.snapshot, who)
    return result


@dataclass(frozen=True)
class _Held:
    list_pk: int
    hash_ids: list[int]
    labels: list[str]


def _records(source: Source, keys: str) -> dict[str, _Held]:
    """The records held under the keys (an array literal, see _quoted)."""
    # One look-up of the unique (source, key) index per key. With ``key = ANY(…)``, or a plain
    # join, the planner may read all the source's records instead (see _PAGE_SETTINGS); OFFSET 0
    # keeps the lateral subquery from being flattened into such a join.
    rows = _query(
        "SELECT r.key, r.hash_list_id, r.hash_ids, r.labels"
        "  FROM unnest(%(keys)s::text[]) AS q(key)"
        "  JOIN LATERAL (SELECT * FROM lists_sourcerecord s"
        "                 WHERE s.source_id = %(source)s AND s.key = q.key OFFSET 0) AS r ON true",
        {"keys": keys, "source": source.pk},
    )
    return {
        key: _Held(list_pk, list(hash_ids), list(labels)) for key, list_pk, hash_ids, labels in rows
    }


def _records_write(source: Source, plan: _Plan, deletes: list[str], snapshot: str) -> None:
    """Upsert and delete SourceRecords in one statement each (the arrays as literals)."""
    now = timezone.now()
    if deletes:
        _query(
            "DELETE FROM lists_sourcerecord r USING unnest(%(keys)b::text[]) AS q(key)"
            " WHERE r.source_id = %(source)s AND r.key = q.key",
            {"source": source.pk, "keys": deletes},
        )
    if plan.upsert_arrays["keys"] != "{}":
        _query(
            """
            INSERT INTO lists_sourcerecord
                   (source_id, key, hash_list_id, hash_ids, labels, snapshot, updated)
            SELECT %(source)s, q.key, q.list_id, q.ids::bigint[], q.labels::varchar[],
                   %(snapshot)s, %(now)s
              FROM unnest(%(keys)s::text[], %(lists)s::bigint[], %(ids)s::text[],
                          %(labels)s::text[]) AS q(key, list_id, ids, labels)
            ON CONFLICT (source_id, key) DO UPDATE
               SET hash_list_id = EXCLUDED.hash_list_id, hash_ids = EXCLUDED.hash_ids,
                   labels = EXCLUDED.labels, snapshot = EXCLUDED.snapshot,
                   updated = EXCLUDED.updated
            """,
            {"source": source.pk, "snapshot": snapshot, "now": now, **plan.upsert_arrays},
        )


# New live entries for every list of the page in one statement: each row checks the live-entry
# unique index for itself (a correlated subquery, never a join that could scan the table) unless
# its hash was new to the merged set, and the rows that pass take consecutive change numbers
# after "base" (in list, then hash order). Each distinct label set is cast once and joined by its
# number; each row brings its entry's public id. The arrays travel as text literals, which
# PostgreSQL parses faster than Python packs them in binary.
_ADD_ENTRIES = """
WITH label_sets AS MATERIALIZED (
    SELECT n, literal::varchar[] AS labels
      FROM unnest(%(label_sets)s::text[]) WITH ORDINALITY AS s(literal, n)
), fresh AS (
    SELECT q.list_id, q.hash_id, q.signal_type, q.label_set, q.public_id,
           row_number() OVER (ORDER BY q.list_id, q.hash_id) AS rn
      FROM unnest(%(lists)s::bigint[], %(ids)s::bigint[], %(types)s::text[],
                  %(label_set_of)s::int[], %(public_ids)s::text[], %(check)s::bool[])
           AS q(list_id, hash_id, signal_type, label_set, public_id, check_live)
     WHERE CASE WHEN q.check_live
                THEN (SELECT e.id FROM lists_entry e
                       WHERE e.hash_list_id = q.list_id AND e.hash_id = q.hash_id
                         AND e.removed_seq IS NULL) IS NULL
                ELSE true END
), inserted AS (
    INSERT INTO lists_entry (
        hash_list_id, hash_id, public_id, labels, note, added_seq, added_at,
        added_by_user_id, added_by_key_id, added_by_label, removed_by_label, removed_reason
    )
    SELECT f.list_id, f.hash_id, f.public_id, s.labels, '',
           %(base)s + f.rn, %(now)s, NULL, NULL, %(label)s, '', ''
      FROM fresh f JOIN label_sets s ON s.n = f.label_set
)
SELECT list_id, signal_type, count(*) FROM fresh GROUP BY list_id, signal_type
"""


def _literal(values: Iterable[object]) -> str:
    """A PostgreSQL array literal of values that need no quoting (numbers, ids, type names)."""
    return "{" + ",".join(map(str, values)) + "}"


def _add_entries(by_pk: Mapping[int, HashList], plan: _Plan, who: Provenance) -> int:
    """Live entries for the plan's hashes not live in their list yet. Returns how many.

    The hashes exist already (``_hash_ids``), so this is one INSERT for the whole page, under
    one hold of the sequence lock. Hashes the run itself inserted into the merged set are not
    looked for: no entry can hold them yet (the run is the only writer of its lists), and the
    live-entry unique index would still refuse a second one.
    """
    if not plan.add_rows:
        return 0
    base = _lock_sequence()
    counted = _query(
        _ADD_ENTRIES,
        {**plan.add_arrays, "base": base, "now": timezone.now(), "label": who.label},
    )
    by_list: dict[int, dict[str, int]] = defaultdict(dict)
    for list_pk, signal_type, count in counted:
        by_list[list_pk][signal_type] = int(count)
    added = sum(sum(by_type.values()) for by_type in by_list.values())
    _advance_sequence(added)
    for list_pk, by_type in sorted(by_list.items()):
        _count_changes(by_pk[list_pk], by_type, sign=1)
    return added


def _relabel(hash_list: HashList, labels_by_hash: Mapping[int, list[str]]) -> None:
    """An update may change a record's labels (e.g. its classification): follow on live entries."""
    ordered = sorted(labels_by_hash.items())
    # The live entries through one index probe each (see _RELEASED_TARGETS).
    _query(
        "UPDATE lists_entry e SET labels = t.labels"
        "  FROM (SELECT live.id, q.labels::varchar[] AS labels"
        "          FROM unnest(%(ids)b::bigint[], %(labels)b::text[]) AS q(id, labels)"
        "          JOIN LATERAL (SELECT l.id, l.labels FROM lists_entry l"
        "                         WHERE l.hash_list_id = %(list)s AND l.hash_id = q.id"
        "                           AND l.removed_seq IS NULL OFFSET 0) AS live ON true"
        "         WHERE live.labels <> q.labels::varchar[]) AS t"
        " WHERE e.id = t.id",
        {
            "ids": [hash_id for hash_id, _ in ordered],
            "labels": [_quoted(labels) for _, labels in ordered],
            "list": hash_list.pk,
        },
    )


# The live entries of released hashes: one probe of the live-entry index per hash (a lateral
# subquery that OFFSET 0 keeps from being flattened into a join, which the planner may run as a
# scan of the whole list while the import outgrows the statistics), and the type from a
# correlated subquery for the same reason.
_RELEASED_TARGETS = """
    SELECT e.id, (SELECT h.signal_type FROM lists_hash h WHERE h.id = e.hash_id) AS signal_type
      FROM unnest(%(ids)s::bigint[]) AS q(id)
      JOIN LATERAL (SELECT l.id, l.hash_id FROM lists_entry l
                     WHERE l.hash_list_id = %(list)s AND l.hash_id = q.id
                       AND l.removed_seq IS NULL OFFSET 0) AS e ON true
"""


def _still_held(hash_list: HashList, hash_ids: list[int]) -> set[int]:
    """Of ``hash_ids``, those some record of the list still holds (GIN look-ups, one per id).

    One look-up per id rather than one overlap with the whole array: the planner rates an
    overlap with hundreds of ids as matching most of the table (it has no statistics for ids
    that each occur once) and scans every record instead. A count, not EXISTS or LIMIT 1, so
    that it does not plan a scan that hopes to stop early; ``OFFSET 0`` keeps the list
    condition out of the GIN look-up, to be checked on the few records it finds.
    """
    rows = _query(
        "SELECT id FROM ("
        "  SELECT q.id, (SELECT count(*)"
        "                  FROM (SELECT hash_list_id FROM lists_sourcerecord"
        "                         WHERE hash_ids @> ARRAY[q.id] OFFSET 0) AS r"
        "                 WHERE r.hash_list_id = %(list)s) AS n"
        "    FROM unnest(%(ids)b::bigint[]) AS q(id)"
        ") AS held WHERE n > 0",
        {"list": hash_list.pk, "ids": hash_ids},
    )
    return {held for (held,) in rows}


def _release(hash_list: HashList | None, hash_ids: set[int], who: Provenance) -> int:
    """Remove the hashes no record of the list holds any longer. Returns how many."""
    if hash_list is None or not hash_ids:
        return 0
    candidates = sorted(hash_ids)
    gone = sorted(set(candidates) - _still_held(hash_list, candidates))
    if not gone:
        return 0
    return _tombstone(hash_list, _RELEASED_TARGETS, who, "removed upstream", {"ids": gone})


def _sweep(source: Source, by_pk: Mapping[int, HashList], snapshot: str, who: Provenance) -> int:
    """After a complete snapshot: drop the records it did not name, and their hashes."""
    stale = SourceRecord.objects.filter(source=source).exclude(snapshot=snapshot)
    released: dict[int, set[int]] = defaultdict(set)
    for list_pk, hash_ids in stale.values_list("hash_list_id", "hash_ids"):
        released[list_pk].update(hash_ids)
    stale.delete()
    return sum(_release(by_pk.get(pk), ids, who) for pk, ids in released.items())


@transaction.atomic
def feed_file_store(*, source: Source, data: bytes, filename: str, actor: Actor) -> ImportRun:
    """Keep an uploaded feed file for a ``feed`` source, point the source at it, queue a run.

    The file is written whole under the feed directory (a temporary name, then renamed), so a
    run never reads half a file; the source then reads it instead of any URL. Audited (name and
    size, never the content).
    """
    import hashlib
    import os
    import tempfile

    from django.conf import settings

    if source.kind != Source.Kind.FEED:
        raise ServiceError("not_a_feed", "Only a file or URL feed source takes an uploaded file.")
    if not data:
        raise ServiceError("empty_file", "The file is empty.")
    if len(data) > settings.HASHHUB_MAX_HASH_FILE_BYTES:
        raise ServiceError(
            "file_too_large",
            f"A feed file may be at most {settings.HASHHUB_MAX_HASH_FILE_BYTES:,} bytes.",
            status=413,
        )
    directory = settings.HASHHUB_FEED_DIR / source.public_id
    directory.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(data).hexdigest()
    target = directory / f"{timezone.now():%Y%m%dT%H%M%S}-{digest[:12]}.feed"
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".upload-")
    with os.fdopen(handle, "wb") as out:
        out.write(data)
    os.replace(temporary, target)
    config = {k: v for k, v in source.config.items() if k not in ("url", "token_env")}
    config["file"] = str(target.relative_to(settings.HASHHUB_FEED_DIR))
    source.config = _clean_config(source.kind, config)
    source.save(update_fields=["config"])
    _audit_source(
        source,
        "source.file_uploaded",
        actor,
        filename=filename[:200],
        bytes=len(data),
        sha256=digest,
    )
    return run_create(source=source, trigger=actor.label, actor=actor)


def scheduled_run(source_id: int) -> ImportRun | None:
    """What beat's PeriodicTask of a source does: queue a run of it (or find the one pending),
    unless the source is gone or disabled meanwhile."""
    source = Source.objects.filter(pk=source_id, enabled=True).first()
    if source is None:
        return None
    return run_create(source=source, trigger="schedule")


def source_run_now(*, source: Source, actor: Actor = SYSTEM) -> ImportRun:
    """Queue a run for ``actor`` (the staff UI's "Run now"); audited."""
    return run_create(source=source, trigger=actor.label, actor=actor)
