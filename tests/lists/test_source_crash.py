"""A source import killed part-way (kill -9 of a real Celery worker), then run again, ends in
exactly the state of a clean, uninterrupted import: no duplicate, no lost update or removal.

The upstream is the NCMEC fixture server (a real HTTP server on 127.0.0.1) serving a synthetic
log slowly: 2,000 entries over two days (two time windows) in pages of 100, 0.2 s a page, with
updates and deletions of earlier entries, some on later pages of the same window.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from django_scopes import scopes_disabled

from hub.audit import Actor
from lists.models import Entry, ImportRun, Source, SourceRecord
from lists.sources import runs
from lists.sources import services as source_services
from lists.sources.adapters.http import Http
from tests.conftest import wait_for
from tests.lists.ncmec_fixtures import PASSWORD, USERNAME, NcmecServer, SyntheticLog, iso

pytestmark = pytest.mark.celery

START = datetime(2023, 5, 1, tzinfo=UTC)
SYSTEM = Actor(system="test")


@pytest.fixture
def ncmec_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """In the environment before the worker starts (it copies os.environ): ask for it first."""
    monkeypatch.setenv("HASHHUB_SOURCE_CRASH_NCMEC_USER", USERNAME)
    monkeypatch.setenv("HASHHUB_SOURCE_CRASH_NCMEC_PASS", PASSWORD)


@pytest.fixture
def slow_upstream() -> Iterator[NcmecServer]:
    log = SyntheticLog(2000, start=START, per_day=1000, update_gap=503, delete_gap=607)
    with NcmecServer(log=log, page_size=100, delay=0.2) as server:
        yield server


def make_source(server: NcmecServer, name: str) -> Source:
    log = server.log
    assert isinstance(log, SyntheticLog)
    config = {
        "url": server.url,
        "username_env": "HASHHUB_SOURCE_CRASH_NCMEC_USER",
        "password_env": "HASHHUB_SOURCE_CRASH_NCMEC_PASS",
        "start": iso(START),
        "until": iso(log.end + 1),
        "window_hours": 24,
        "settle_minutes": 0,
    }
    return source_services.source_create(name=name, kind="ncmec", config=config, actor=SYSTEM)


def run_here(source: Source) -> ImportRun:
    """Run (or resume) an import of ``source`` in this process, to the end."""
    deadline = time.monotonic() + 30
    while True:
        queued = runs.run_create(source=source, trigger="test", enqueue=False)
        http = Http(attempts=3, backoff=0.01, timeout=10)
        try:
            result = runs.run_execute(run_id=queued.pk, http=http)
        finally:
            http.close()
        # The killed worker's connection may hold the source's lock a moment longer.
        if result.error_code != "source_busy" or time.monotonic() > deadline:
            return result
        time.sleep(0.2)


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


def alive(pid: int) -> bool:
    """Running, that is: neither gone nor a zombie nobody has waited for yet."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def state(source: Source) -> dict[str, Any]:
    """What a clean import and a crashed-and-resumed one must agree on."""
    live: dict[str, set[tuple[str, str, tuple[str, ...]]]] = {"csam": set(), "se": set()}
    removals: dict[str, set[tuple[str, str]]] = {"csam": set(), "se": set()}
    live_rows = 0
    with scopes_disabled():
        rows = Entry.objects.filter(hash_list__source=source).select_related("hash", "hash_list")
        for entry in rows:
            pair = (entry.hash.signal_type, bytes(entry.hash.value).hex())
            if entry.removed_seq is None:
                live[entry.hash_list.category].add((*pair, tuple(entry.labels)))
                live_rows += 1
            else:
                removals[entry.hash_list.category].add(pair)
        records = SourceRecord.objects.filter(source=source)
        keyed = {
            (key, tuple(labels), category)
            for key, labels, category in records.values_list("key", "labels", "hash_list__category")
        }
    assert live_rows == sum(len(found) for found in live.values())  # no duplicate live entry
    return {
        "live": live,
        "removals": removals,
        "records": keyed,
    }


@pytest.mark.parametrize("kill_after_pages", [3, 12])
def test_a_run_killed_part_way_then_run_again_ends_like_a_clean_run(
    ncmec_credentials: None,
    slow_upstream: NcmecServer,
    celery_worker_process: subprocess.Popen[str],
    kill_after_pages: int,
) -> None:
    crashed = make_source(slow_upstream, "NCMEC (crashed)")
    queued = runs.run_create(source=crashed, trigger="test")  # a Celery task, on commit

    def far_enough() -> ImportRun | None:
        run = ImportRun.objects.get(pk=queued.pk)
        return run if run.pages >= kill_after_pages else None

    progressed = wait_for(far_enough, celery_worker_process, seconds=60)
    assert progressed is not None, celery_worker_process.communicate(timeout=5)[0][-3000:]
    helpers = children(celery_worker_process.pid)
    assert helpers, "the run prepares pages ahead in a helper process"
    celery_worker_process.kill()  # SIGKILL: no cleanup, a transaction may be half-way
    celery_worker_process.wait(timeout=10)
    # The helper dies with the worker rather than going on fetching for nobody.
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in helpers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(pid) for pid in helpers)

    killed = ImportRun.objects.get(pk=queued.pk)
    assert killed.status == ImportRun.Status.RUNNING  # it really died mid-run
    crashed.refresh_from_db()
    assert crashed.checkpoint, "the checkpoint advanced before the kill"
    assert killed.seen < 2000

    resumed = run_here(crashed)
    clean = make_source(slow_upstream, "NCMEC (clean)")
    uninterrupted = run_here(clean)

    assert (resumed.status, uninterrupted.status) == ("succeeded", "succeeded")
    # It resumed from the checkpoint rather than starting over (a resumed run keeps counting
    # on the dead run's row when it picks that one up).
    after_kill = resumed.seen - (killed.seen if resumed.pk == killed.pk else 0)
    assert 0 < after_kill < uninterrupted.seen <= killed.seen + after_kill
    crashed.refresh_from_db()
    clean.refresh_from_db()
    assert crashed.checkpoint == clean.checkpoint
    assert state(crashed) == state(clean)
    assert len(state(clean)["removals"]["csam"]) > 0  # the data did exercise removals
    assert ImportRun.objects.get(pk=queued.pk).status != ImportRun.Status.RUNNING
