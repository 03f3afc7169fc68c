"""The per-process match index: deltas through the change sequence, snapshots, and start-up."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest
from django.db import connection

from hub.models import Organization
from matching.engine import MatchEngine, snapshot_write
from tests.matching.test_match_api import add, flip, own_list, random_pdq, remove

pytestmark = pytest.mark.django_db


def ids_found(engine: MatchEngine, value: str, radius: int = 31) -> list[int]:
    [hits] = engine.search("pdq", [bytes.fromhex(value)], radius)
    return [hash_id for hash_id, _ in hits]


def test_it_picks_up_adds_and_removals_made_after_it_was_built(org_a: Organization) -> None:
    engine = MatchEngine()
    first = random_pdq()
    add(own_list(org_a), ("pdq", first))
    assert len(ids_found(engine, first)) == 1
    built_at = engine.version
    assert built_at is not None

    batch = [random_pdq() for _ in range(5000)]
    add(own_list(org_a), *[("pdq", value) for value in batch])
    assert len(ids_found(engine, flip(batch[-1], 9))) == 1
    assert engine.version == built_at + 5000
    assert engine.size("pdq") == 5001

    remove(own_list(org_a), ("pdq", first))
    assert ids_found(engine, first) == []
    assert engine.size("pdq") == 5000


def test_a_hash_in_two_lists_is_indexed_once_and_stays_while_one_holds_it(
    org_a: Organization,
) -> None:
    engine = MatchEngine()
    value = random_pdq()
    add(own_list(org_a, "csam"), ("pdq", value))
    add(own_list(org_a, "se"), ("pdq", value))
    assert len(ids_found(engine, value)) == 1
    remove(own_list(org_a, "csam"), ("pdq", value))
    assert len(ids_found(engine, value)) == 1
    remove(own_list(org_a, "se"), ("pdq", value))
    assert ids_found(engine, value) == []


def test_it_rebuilds_when_the_sequence_goes_back(org_a: Organization) -> None:
    engine = MatchEngine()
    value = random_pdq()
    add(own_list(org_a), ("pdq", value))
    assert ids_found(engine, value)
    # As after restoring an older backup: the hash is gone and the counter is lower.
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM lists_entry")
        cursor.execute("UPDATE lists_changecounter SET last = 0")
    assert ids_found(engine, value) == []
    assert engine.version == 0


def test_a_snapshot_is_loaded_and_the_changes_after_it_applied(
    org_a: Organization, tmp_path: Path
) -> None:
    before = [random_pdq() for _ in range(300)]
    add(own_list(org_a), *[("pdq", value) for value in before], ("phash", secrets.token_hex(8)))
    version = snapshot_write(tmp_path)
    after = random_pdq()
    add(own_list(org_a), ("pdq", after))
    remove(own_list(org_a), ("pdq", before[0]))

    engine = MatchEngine(tmp_path)
    assert ids_found(engine, flip(before[1], 3))
    assert engine.started_from == "snapshot"
    assert ids_found(engine, after)
    assert ids_found(engine, before[0]) == []
    assert engine.version == version + 2
    assert engine.size("pdq") == 300
    assert engine.size("phash") == 1


def test_a_snapshot_of_another_database_is_ignored(org_a: Organization, tmp_path: Path) -> None:
    value = random_pdq()
    add(own_list(org_a), ("pdq", value))
    snapshot_write(tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["database"] = "someone else's"
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    remove(own_list(org_a), ("pdq", value))
    engine = MatchEngine(tmp_path)
    assert ids_found(engine, value) == []
    assert engine.started_from == "database"


def test_a_damaged_snapshot_is_ignored_and_the_index_built_from_the_database(
    org_a: Organization, tmp_path: Path
) -> None:
    value = random_pdq()
    add(own_list(org_a), ("pdq", value))
    snapshot_write(tmp_path)
    damaged = list((tmp_path / "pdq").resolve().glob("*.npy"))
    assert damaged
    for array in damaged:
        array.write_bytes(b"garbage")
    engine = MatchEngine(tmp_path)
    assert ids_found(engine, value)
    assert engine.started_from == "database"


def test_writing_a_snapshot_replaces_the_previous_one(org_a: Organization, tmp_path: Path) -> None:
    add(own_list(org_a), ("pdq", random_pdq()))
    snapshot_write(tmp_path)
    add(own_list(org_a), ("pdq", random_pdq()))
    version = snapshot_write(tmp_path)
    assert json.loads((tmp_path / "manifest.json").read_text())["version"] == version
    engine = MatchEngine(tmp_path)
    assert engine.sync() == version
    assert engine.started_from == "snapshot"
    assert engine.size("pdq") == 2


def test_a_snapshot_ahead_of_the_database_is_ignored(org_a: Organization, tmp_path: Path) -> None:
    # As when a database is restored from a backup older than the snapshot.
    add(own_list(org_a), ("pdq", random_pdq()))
    snapshot_write(tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["version"] += 100
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    engine = MatchEngine(tmp_path)
    assert engine.sync() == manifest["version"] - 100
    assert engine.started_from == "database"


@pytest.mark.django_db(transaction=True)
def test_threads_of_one_process_share_the_engine_and_each_reads_its_writes(
    org_a: Organization, caplog: pytest.LogCaptureFixture
) -> None:
    """gthread workers: searches in several threads while hashes are added; no rebuilds."""
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connections

    engine = MatchEngine()
    hash_list = own_list(org_a)
    add(hash_list, ("pdq", random_pdq()))
    engine.sync()

    def add_then_find(_: int) -> bool:
        try:
            value = random_pdq()
            add(hash_list, ("pdq", value))
            return all(len(ids_found(engine, flip(value, 3))) == 1 for _ in range(5))
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=4) as pool:
        assert all(pool.map(add_then_find, range(24)))
    assert engine.size("pdq") == 25
    # A change number read before the lock and older than another thread's sync is not a restore.
    assert "went back" not in caplog.text


def test_a_stale_change_number_read_before_the_lock_is_not_taken_for_a_restore(
    org_a: Organization, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from matching import engine as engine_module

    value = random_pdq()
    add(own_list(org_a), ("pdq", value))
    engine = MatchEngine()
    engine.sync()
    assert engine.version is not None
    real = engine_module.sequence_last
    stale = [engine.version - 1]  # what a thread read just before another one synced

    def sequence_last() -> int:
        return stale.pop() if stale else real()

    monkeypatch.setattr(engine_module, "sequence_last", sequence_last)
    assert len(ids_found(engine, value)) == 1
    assert "went back" not in caplog.text
