"""The README's backup and restore runbook: the database first, and no index snapshot newer than it.

A dump is taken with the machine's ``pg_dump`` (the binaries hub.embedded finds), more changes
are made and a match index snapshot is written after them, then the dump is restored over the
database with ``pg_restore --clean``, as the runbook says. The snapshot is now ahead of the
database: the engine must refuse it (and say so in the log), rebuild from the database, and
match what the database holds, not what the snapshot remembers.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from django.db import connection, connections
from django.test import Client

from hub.embedded import find_pg_bindir
from hub.models import Organization
from lists.changes import sequence_last
from matching.engine import MatchEngine, snapshot_write
from tests.matching.test_engine import ids_found
from tests.matching.test_match_api import add, match, own_list, random_pdq, remove

# pg_dump reads what is committed, so the test's rows must be.
pytestmark = pytest.mark.django_db(transaction=True)


def _tool(name: str) -> str:
    found = find_pg_bindir() / name
    return str(found) if found.exists() else shutil.which(name) or name


def _connection_args() -> tuple[list[str], dict[str, str]]:
    db = connection.settings_dict
    args = ["--dbname", db["NAME"], "--no-password"]
    if db.get("HOST"):
        args += ["--host", db["HOST"]]
    if db.get("PORT"):
        args += ["--port", str(db["PORT"])]
    if db.get("USER"):
        args += ["--username", db["USER"]]
    env = {**os.environ, "PGPASSWORD": db.get("PASSWORD") or ""}
    return args, env


def pg_dump(path: Path) -> None:
    """The runbook's backup: ``pg_dump --format=custom``."""
    args, env = _connection_args()
    subprocess.run(
        [_tool("pg_dump"), "--format=custom", "--file", str(path), *args],
        check=True,
        env=env,
        capture_output=True,
        timeout=120,
    )


def pg_restore(path: Path) -> None:
    """The runbook's restore over the same database, with every connection to it closed."""
    connections.close_all()
    args, env = _connection_args()
    result = subprocess.run(
        [
            _tool("pg_restore"),
            "--clean",
            "--if-exists",
            "--single-transaction",
            "--no-owner",
            *args,
            str(path),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr


def test_a_restored_database_refuses_a_newer_snapshot_and_serves_what_it_holds(
    org_a: Organization,
    api_a: Client,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    kept, gone_since = random_pdq(), random_pdq()
    hash_list = own_list(org_a)
    add(hash_list, ("pdq", kept))
    backup = tmp_path / "hashhub.dump"
    pg_dump(backup)
    at_backup = sequence_last()

    # After the backup: one hash removed, another added, and a snapshot of that state.
    remove(hash_list, ("pdq", kept))
    add(hash_list, ("pdq", gone_since))
    snapshots = tmp_path / "index"
    snapshot_version = snapshot_write(snapshots)
    assert snapshot_version > at_backup
    assert MatchEngine(snapshots).sync() == snapshot_version  # usable before the restore

    pg_restore(backup)

    assert sequence_last() == at_backup
    engine = MatchEngine(snapshots)
    assert engine.sync() == at_backup
    assert engine.started_from == "database"
    assert "refusing the match index snapshot" in caplog.text
    assert len(ids_found(engine, kept)) == 1
    assert ids_found(engine, gone_since) == []

    # And the match API, whose engine last saw the later state, answers what the database holds.
    response = match(api_a, [{"type": "pdq", "value": kept}, {"type": "pdq", "value": gone_since}])
    assert response.status_code == 200, response.content
    found, missing = response.json()["results"]
    assert [m["list"]["id"] for m in found["matches"]] == [hash_list.public_id]
    assert missing["matches"] == []
