"""Source runs: pages and checkpoints in one transaction, keyed updates, refcounts, snapshots.

The adapter here is a scripted one (the real formats have their own tests against real HTTP
servers); what is under test is the runner's bookkeeping against PostgreSQL.
"""

from __future__ import annotations

import gc
import secrets
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest
from django.db import connection, transaction
from django_scopes import scopes_disabled

from hub.audit import Actor
from hub.errors import ServiceError
from lists.models import Entry, HashList, ImportRun, ImportRunError, Source, SourceRecord
from lists.sources import helper, pages, runs
from lists.sources import services as source_services
from lists.sources.adapters.base import Adapter, Page, Record, RecordError
from lists.sources.errors import SourceError

pytestmark = pytest.mark.django_db

SYSTEM = Actor(system="test")


class Scripted(Adapter):
    """Serves ``SCRIPT`` (a list of pages) from the checkpoint's page number on."""

    kind: ClassVar[str] = "feed"
    SCRIPT: ClassVar[list[Page | SourceError]] = []

    def pages(self, checkpoint: Mapping[str, Any]) -> Iterator[Page]:
        for number in range(int(checkpoint.get("page", 0)), len(self.SCRIPT)):
            step = self.SCRIPT[number]
            if isinstance(step, SourceError):
                raise step
            yield step


@pytest.fixture
def source(monkeypatch: pytest.MonkeyPatch) -> Source:
    monkeypatch.setattr(source_services, "adapter_class", lambda kind: Scripted)
    monkeypatch.setattr(runs, "adapter_class", lambda kind: Scripted)
    Scripted.SCRIPT = []
    return source_services.source_create(name="Scripted", kind="feed", config={}, actor=SYSTEM)


def pdq() -> str:
    return secrets.token_hex(32)


def page(number: int, *records: Record, **extra: Any) -> Page:
    return Page(records=list(records), checkpoint={"page": number + 1}, **extra)


def run(source: Source) -> ImportRun:
    queued = runs.run_create(source=source, trigger="test", enqueue=False)
    return runs.run_execute(run_id=queued.pk)


def live(source: Source) -> dict[str, set[tuple[str, str, tuple[str, ...]]]]:
    """category -> {(type, value, labels)} of the source's live entries; checks on the way that
    each list's live counts (kept by every write) are what its live entries add up to."""
    found: dict[str, set[tuple[str, str, tuple[str, ...]]]] = {"csam": set(), "se": set()}
    with scopes_disabled():
        for entry in Entry.objects.filter(
            hash_list__source=source, removed_seq__isnull=True
        ).select_related("hash", "hash_list"):
            found[entry.hash_list.category].add(
                (entry.hash.signal_type, bytes(entry.hash.value).hex(), tuple(entry.labels))
            )
        for hash_list in HashList.objects.filter(source=source):
            counted: dict[str, int] = {}
            for signal_type, _, _ in found[hash_list.category]:
                counted[signal_type] = counted.get(signal_type, 0) + 1
            assert hash_list.live_counts == counted, hash_list.category
    return found


def test_keyed_records_add_update_and_delete(source: Source) -> None:
    a, b, c = pdq(), pdq(), pdq()
    Scripted.SCRIPT = [
        page(0, Record("p0#1", "add", (("pdq", a), ("md5", "ab" * 16)), key="m:1", labels=("A1",))),
        page(1, Record("p1#1", "add", (("pdq", b),), key="m:2", category="se")),
    ]
    done = run(source)
    assert done.status == "succeeded", done.error_message
    assert (done.pages, done.seen, done.added, done.updated, done.removed) == (2, 2, 3, 0, 0)
    assert live(source) == {
        "csam": {("pdq", a, ("A1",)), ("md5", "ab" * 16, ("A1",))},
        "se": {("pdq", b, ())},
    }
    # A later record with the same key replaces its hashes and labels; a deletion by key.
    Scripted.SCRIPT += [
        page(2, Record("p2#1", "add", (("pdq", c), ("md5", "ab" * 16)), key="m:1", labels=("B2",))),
        page(3, Record("p3#1", "remove", key="m:2")),
    ]
    done = run(source)
    assert done.status == "succeeded", done.error_message
    assert (done.pages, done.added, done.updated, done.removed) == (2, 1, 1, 2)
    assert live(source) == {
        "csam": {("pdq", c, ("B2",)), ("md5", "ab" * 16, ("B2",))},
        "se": set(),
    }


@pytest.mark.parametrize("key", ['m:"quoted"', "back\\slash", "{braces,comma}", "NULL", " spaced "])
def test_any_upstream_key_is_found_again_for_its_update_and_deletion(
    source: Source, key: str
) -> None:
    """Keys travel to PostgreSQL inside array literals: quotes, backslashes, braces, commas,
    spaces and the word NULL all come back as themselves."""
    first, second = pdq(), pdq()
    Scripted.SCRIPT = [
        page(0, Record("1", "add", (("pdq", first),), key=key, labels=("A1",))),
        page(1, Record("2", "add", (("pdq", second),), key=key, labels=("B1",))),
    ]
    done = run(source)
    assert (done.status, done.added, done.updated, done.removed) == ("succeeded", 2, 1, 1)
    assert live(source)["csam"] == {("pdq", second, ("B1",))}
    assert list(SourceRecord.objects.filter(source=source).values_list("key", flat=True)) == [key]
    Scripted.SCRIPT.append(page(2, Record("3", "remove", key=key)))
    assert run(source).removed == 1
    assert live(source)["csam"] == set()
    assert not SourceRecord.objects.filter(source=source).exists()


def test_a_hash_shared_by_two_records_stays_until_both_let_go(source: Source) -> None:
    shared = pdq()
    Scripted.SCRIPT = [
        page(0, Record("1", "add", (("pdq", shared),), key="r1")),
        page(1, Record("2", "add", (("pdq", shared),), key="r2")),
        page(2, Record("3", "remove", key="r1")),
    ]
    run(source)
    assert live(source)["csam"] == {("pdq", shared, ())}
    Scripted.SCRIPT.append(page(3, Record("4", "remove", key="r2")))
    run(source)
    assert live(source)["csam"] == set()


def test_bad_records_are_reported_with_their_position_and_the_rest_applies(
    source: Source,
) -> None:
    good = pdq()
    Scripted.SCRIPT = [
        page(
            0,
            Record("line 1", "add", (("pdq", good),)),
            Record("line 2", "add", (("pdq", "abc"),)),
            Record("line 3", "add", (("nosuchtype", "00"),)),
            Record("line 4", "add", (("md5", "cd" * 16),), category="weird"),
            errors=[RecordError("line 5", "broken_row", "The row has 7 cells, not 2.")],
        )
    ]
    done = run(source)
    assert done.status == "succeeded"
    assert done.rejected == 4
    with scopes_disabled():
        errors = list(ImportRunError.objects.filter(run=done).values_list("position", "code"))
    assert [p for p, _ in errors] == ["line 5", "line 2", "line 3", "line 4"]
    assert errors[-1][1] == "invalid_category"
    assert live(source)["csam"] == {("pdq", good, ())}


def test_a_failing_page_fails_the_run_and_keeps_the_checkpoint(source: Source) -> None:
    first = pdq()
    Scripted.SCRIPT = [
        page(0, Record("1", "add", (("pdq", first),))),
        SourceError("malformed_page", "Page 2 is not XML."),
        page(2, Record("3", "add", (("pdq", pdq()),))),
    ]
    done = run(source)
    assert (done.status, done.error_code) == ("failed", "malformed_page")
    source.refresh_from_db()
    assert source.checkpoint == {"page": 1}  # the good page's, not further
    assert source.last_error.startswith("malformed_page")
    assert live(source)["csam"] == {("pdq", first, ())}
    Scripted.SCRIPT[1] = page(1, Record("2", "add", (("pdq", pdq()),)))  # the upstream is fixed
    done = run(source)
    assert done.status == "succeeded"
    assert done.checkpoint_before == {"page": 1} and done.checkpoint_after == {"page": 3}
    assert len(live(source)["csam"]) == 3


def test_a_run_keeps_the_collector_off_older_objects_and_gives_them_back(
    source: Source, monkeypatch: pytest.MonkeyPatch
) -> None:
    frozen_during: list[int] = []

    class Watching(Scripted):
        def pages(self, checkpoint: Mapping[str, Any]) -> Iterator[Page]:
            frozen_during.append(gc.get_freeze_count())
            yield from super().pages(checkpoint)

    monkeypatch.setattr(runs, "adapter_class", lambda kind: Watching)
    assert gc.get_freeze_count() == 0
    Scripted.SCRIPT = [page(0, Record("1", "add", (("pdq", pdq()),)))]
    assert run(source).status == "succeeded"
    Scripted.SCRIPT.append(SourceError("malformed_page", "Page 2 is not XML."))
    assert run(source).status == "failed"
    assert len(frozen_during) == 2 and min(frozen_during) > 0
    assert gc.get_freeze_count() == 0


def test_applying_pages_again_changes_nothing(source: Source) -> None:
    values = [pdq() for _ in range(5)]
    Scripted.SCRIPT = [
        page(0, *[Record(str(i), "add", (("pdq", v),), key=f"k{i}") for i, v in enumerate(values)]),
        page(1, Record("5", "remove", key="k0")),
    ]
    run(source)
    before = live(source)
    with connection.cursor() as cursor:
        cursor.execute("SELECT last FROM lists_changecounter")
        sequence = cursor.fetchone()[0]
    for page_number in (1, 0):  # the last page again, then every page (a full replay)
        Source.objects.filter(pk=source.pk).update(checkpoint={"page": page_number})
        again = run(source)
        assert again.status == "succeeded"
        assert live(source) == before
    with connection.cursor() as cursor:
        cursor.execute("SELECT last FROM lists_changecounter")
        after_last_page_again = cursor.fetchone()[0]
    # Re-applying the last page alone changed nothing at all (no change numbers taken).
    Source.objects.filter(pk=source.pk).update(checkpoint={"page": 1})
    again = run(source)
    assert (again.added, again.removed, again.updated) == (0, 0, 0)
    with connection.cursor() as cursor:
        cursor.execute("SELECT last FROM lists_changecounter")
        assert cursor.fetchone()[0] == after_last_page_again
    assert sequence <= after_last_page_again


def test_a_complete_snapshot_removes_what_it_no_longer_names(source: Source) -> None:
    a, b, c = pdq(), pdq(), pdq()
    Scripted.SCRIPT = [
        page(0, Record("1", "add", (("pdq", a),)), snapshot="s1"),
        page(1, Record("2", "add", (("pdq", b),)), snapshot="s1", snapshot_complete=True),
    ]
    run(source)
    assert {v for _, v, _ in live(source)["csam"]} == {a, b}
    Scripted.SCRIPT += [
        page(2, Record("1", "add", (("pdq", b),)), snapshot="s2"),
        page(3, Record("2", "add", (("pdq", c),)), snapshot="s2"),
    ]
    run(source)  # not complete yet: nothing removed
    assert {v for _, v, _ in live(source)["csam"]} == {a, b, c}
    Scripted.SCRIPT.append(page(4, snapshot="s2", snapshot_complete=True))
    done = run(source)
    assert done.removed == 1
    assert {v for _, v, _ in live(source)["csam"]} == {b, c}
    with scopes_disabled():
        assert set(
            SourceRecord.objects.filter(source=source).values_list("snapshot", flat=True)
        ) == {"s2"}


def test_one_run_at_a_time_per_source(source: Source) -> None:
    Scripted.SCRIPT = [page(0, Record("1", "add", (("pdq", pdq()),)))]
    queued = runs.run_create(source=source, trigger="test", enqueue=False)
    assert runs.run_create(source=source, trigger="again", enqueue=False) == queued
    # Another connection holds the source's lock, as a running worker would.
    from django.db import connections

    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s, %s)", [runs._LOCK_NAMESPACE, source.pk])
        with pytest.raises(ServiceError) as busy:
            runs.run_execute(run_id=queued.pk)
        assert busy.value.code == "source_busy"
        queued.refresh_from_db()
        assert queued.status == "queued"  # left alone for whoever holds the lock
        assert live(source)["csam"] == set()
    finally:
        other.close()
    assert runs.run_execute(run_id=queued.pk).status == "succeeded"


@pytest.mark.clock
def test_a_dead_workers_run_is_marked_abandoned_by_the_next(source: Source) -> None:
    Scripted.SCRIPT = [page(0, Record("1", "add", (("pdq", pdq()),)))]
    dead = runs.run_create(source=source, trigger="test", enqueue=False)
    ImportRun.objects.filter(pk=dead.pk).update(status="running")
    ImportRun.objects.filter(pk=dead.pk).update(
        heartbeat_at=dead.created - runs.HEARTBEAT_STALE * 2
    )
    fresh = runs.run_create(source=source, trigger="later", enqueue=False)
    assert fresh.pk != dead.pk  # the stale one does not block a new run
    assert runs.run_execute(run_id=fresh.pk).status == "succeeded"
    dead.refresh_from_db()
    assert (dead.status, dead.error_code) == ("failed", "abandoned")


def test_source_validation_errors_have_codes(source: Source) -> None:
    for kwargs, code in [
        ({"name": ""}, "invalid_name"),
        ({"name": "Scripted"}, "name_taken"),
        ({"name": "X", "kind": "carrier-pigeon"}, "invalid_kind"),
        ({"name": "X", "access": "everyone"}, "invalid_access"),
        ({"name": "X", "default_category": "other"}, "invalid_category"),
    ]:
        arguments: dict[str, Any] = {"kind": "feed", "config": {}, "actor": SYSTEM} | kwargs
        with pytest.raises(ServiceError) as refused:
            source_services.source_create(**arguments)
        assert refused.value.code == code


def test_a_running_run_whose_worker_is_gone_does_not_block_a_new_one(source: Source) -> None:
    Scripted.SCRIPT = [page(0, Record("1", "add", (("pdq", pdq()),)))]
    dead = runs.run_create(source=source, trigger="test", enqueue=False)
    ImportRun.objects.filter(pk=dead.pk).update(status="running")  # fresh heartbeat, no lock
    fresh = runs.run_create(source=source, trigger="later", enqueue=False)
    assert fresh.pk != dead.pk
    dead.refresh_from_db()
    assert (dead.status, dead.error_code) == ("failed", "abandoned")
    assert runs.run_execute(run_id=fresh.pk).status == "succeeded"


@pytest.mark.django_db(transaction=True)
def test_a_run_outside_a_transaction_prepares_pages_ahead_and_ends_the_same(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Outside a caller's transaction (a worker), a helper process parses the next page and
    upserts its hashes on its own connection while this one is applied; the lists, the counts
    and a failing page's checkpoint come out as the in-order run's, and no helper lingers."""
    import os
    import threading

    monkeypatch.setattr(source_services, "adapter_class", lambda kind: Scripted)
    monkeypatch.setattr(runs, "adapter_class", lambda kind: Scripted)
    shared, a, b, c = pdq(), pdq(), pdq(), pdq()
    first = Record("1", "add", (("pdq", shared), ("md5", "ab" * 16)), key="r1", labels=("A1",))
    Scripted.SCRIPT = [
        page(0, first),
        page(1, Record("2", "add", (("pdq", shared), ("pdq", a)), key="r2", category="se")),
        page(2, Record("3", "add", (("pdq", b),), key="r1", labels=("B2",))),
        page(3, Record("4", "remove", key="r2"), Record("5", "add", (("pdq", c),), key="r3")),
        SourceError("malformed_page", "Page 5 is not well-formed."),
    ]
    ahead = source_services.source_create(name="Ahead", kind="feed", config={}, actor=SYSTEM)
    in_order = source_services.source_create(name="In order", kind="feed", config={}, actor=SYSTEM)
    helpers = tmp_path / "helpers"  # the helper's memory is its own: it writes down its pid
    real_ahead = helper._prepared_ahead

    def spied_ahead(*args: Any) -> Iterator[Any]:
        with helpers.open("a") as noted:
            noted.write(f"{os.getpid()}\n")
        yield from real_ahead(*args)

    def children() -> str:
        task = Path(f"/proc/self/task/{threading.get_native_id()}/children")
        return task.read_text().strip()

    monkeypatch.setattr(helper, "_prepared_ahead", spied_ahead)
    started_threads = set(threading.enumerate())
    ran_ahead = run(ahead)
    assert helpers.read_text().split() not in ([], [str(os.getpid())])
    assert children() == ""  # the helper process has ended and been waited for
    assert set(threading.enumerate()) <= started_threads
    with transaction.atomic():
        ran_in_order = run(in_order)
    assert len(helpers.read_text().split()) == 1  # inside a transaction, nothing runs ahead
    for done in (ran_ahead, ran_in_order):
        assert (done.status, done.error_code) == ("failed", "malformed_page")
        assert (done.pages, done.seen, done.added, done.updated, done.removed) == (4, 5, 6, 1, 4)
        assert done.checkpoint_after == {"page": 4}
    assert (
        live(ahead)
        == live(in_order)
        == {
            "csam": {("pdq", b, ("B2",)), ("pdq", c, ())},
            "se": set(),
        }
    )


@pytest.mark.django_db(transaction=True)
def test_without_a_helper_process_the_run_prepares_its_pages_itself(
    source: Source, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_fork() -> int:
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(helper.os, "fork", no_fork)
    a, b = pdq(), pdq()
    Scripted.SCRIPT = [
        page(0, Record("1", "add", (("pdq", a),), key="r1", labels=("A1",))),
        page(1, Record("2", "add", (("pdq", b),), key="r1", labels=("B1",))),
    ]
    done = run(source)
    assert (done.status, done.pages, done.added, done.updated, done.removed) == (
        "succeeded", 2, 2, 1, 1,
    )  # fmt: skip
    assert live(source)["csam"] == {("pdq", b, ("B1",))}


@pytest.mark.django_db(transaction=True)
def test_a_run_that_stops_on_its_own_error_kills_its_helper_process(
    source: Source, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The runner fails applying a page while the helper still has pages to prepare (and waits
    on upstream): the helper is killed and waited for, not left behind."""
    import threading

    class Endless(Scripted):
        def pages(self, checkpoint: Mapping[str, Any]) -> Iterator[Page]:
            number = int(checkpoint.get("page", 0))
            while True:
                time.sleep(0.05)
                yield page(number, Record(str(number), "add", (("pdq", pdq()),), key=f"k{number}"))
                number += 1

    monkeypatch.setattr(runs, "adapter_class", lambda kind: Endless)
    real_apply = runs._apply_page_and_checkpoint
    applied: list[int] = []

    def apply_then_break(*args: Any) -> None:
        if len(applied) == 2:
            raise RuntimeError("a bug while applying the third page")
        applied.append(1)
        real_apply(*args)

    monkeypatch.setattr(runs, "_apply_page_and_checkpoint", apply_then_break)
    started = time.monotonic()
    done = run(source)
    assert (done.status, done.error_code, done.pages) == ("failed", "internal_error", 2)
    assert done.checkpoint_after == {"page": 2}
    task = Path(f"/proc/self/task/{threading.get_native_id()}/children")
    assert task.read_text().strip() == ""
    assert time.monotonic() - started < 10


@pytest.mark.django_db(transaction=True)
def test_hashes_another_writer_inserts_meanwhile_are_taken_as_theirs_not_as_new() -> None:
    """Another transaction inserts one of a page's new hashes first (uncommitted, committing
    while the upsert waits on it): the page takes that hash's id as it is, and reports as
    inserted by itself only the hash it did insert."""
    import threading

    import psycopg

    theirs, ours = ("pdq", secrets.token_bytes(32)), ("md5", secrets.token_bytes(16))
    other = psycopg.connect(**connection.get_connection_params())
    try:
        with other.cursor() as cursor:
            cursor.execute(
                "INSERT INTO lists_hash (signal_type, value) VALUES (%s, %s) RETURNING id", theirs
            )
            row = cursor.fetchone()
            assert row is not None
            their_id = row[0]
        # Commits while our upsert waits on its row (no sooner than a moment from now).
        threading.Timer(0.5, other.commit).start()
        started = time.monotonic()
        ids, made = pages._hash_ids([theirs, ours])
        assert time.monotonic() - started >= 0.4  # it did wait for the other transaction
    finally:
        other.close()
    assert ids[theirs] == their_id
    assert made == {ids[ours]}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT signal_type, count(*) FROM lists_hash WHERE value = ANY(%s) GROUP BY 1",
            [[theirs[1], ours[1]]],
        )
        assert dict(cursor.fetchall()) == {"pdq": 1, "md5": 1}
    # Both known now, inside a transaction too (the in-order path): none inserted again.
    with transaction.atomic():
        assert pages._hash_ids([theirs, ours]) == (ids, frozenset())
