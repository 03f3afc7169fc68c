"""Feed and StopNCII sources end to end: real HTTP servers, lists.sources runs, PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django_scopes import scopes_disabled

from hub.audit import Actor
from lists.changes import sequence_last
from lists.models import Entry, ImportRun, ImportRunError, Source
from lists.sources import runs
from lists.sources import services as source_services
from lists.sources.adapters.base import Credentials
from lists.sources.adapters.http import Http
from tests.lists.feed_fixtures import (
    FakeStopNCII,
    Reply,
    Upstream,
    quick_http,
    random_md5,
    random_pdq,
    serve_upstream,
    stopncii_record,
)

pytestmark = pytest.mark.django_db

SYSTEM = Actor(system="test")
KEYS = Credentials(
    {
        "HASHHUB_SOURCE_FEED_TOKEN": "feed-token",
        "HASHHUB_SOURCE_NCII_SUB": "sub-key",
        "HASHHUB_SOURCE_NCII_FN": "fn-key",
    }
)


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    yield from serve_upstream()


@pytest.fixture
def http() -> Iterator[Http]:
    yield from quick_http()


def feed_source(upstream: Upstream, name: str = "IWF-style", **config: Any) -> Source:
    return source_services.source_create(
        name=name,
        kind="feed",
        config={
            "url": f"{upstream.url}/{name}.csv",
            "token_env": "HASHHUB_SOURCE_FEED_TOKEN",
            **config,
        },
        actor=SYSTEM,
    )


def publish(upstream: Upstream, source: Source, body: str) -> None:
    path = "/" + str(source.config["url"]).rsplit("/", 1)[1]

    def answer(request: Any) -> Reply:
        if request.headers.get("authorization") != "Bearer feed-token":
            return Reply("no", 401)
        return Reply(body, headers={"Content-Type": "text/csv"})

    upstream.routes[path] = answer


def run(source: Source, http: Http, **extra: Any) -> ImportRun:
    queued = runs.run_create(source=source, trigger="test", enqueue=False)
    return runs.run_execute(run_id=queued.pk, http=http, credentials=KEYS, **extra)


def live(source: Source) -> dict[str, set[tuple[str, str]]]:
    """category -> {(type, value)} of the source's live entries."""
    found: dict[str, set[tuple[str, str]]] = {"csam": set(), "se": set()}
    with scopes_disabled():
        for entry in Entry.objects.filter(
            hash_list__source=source, removed_seq__isnull=True
        ).select_related("hash", "hash_list"):
            found[entry.hash_list.category].add(
                (entry.hash.signal_type, bytes(entry.hash.value).hex())
            )
    return found


def labels_of(source: Source) -> dict[str, list[str]]:
    with scopes_disabled():
        return {
            bytes(e.hash.value).hex(): list(e.labels)
            for e in Entry.objects.filter(
                hash_list__source=source, removed_seq__isnull=True
            ).select_related("hash")
        }


def csv_body(rows: list[tuple[str, str, str, str]]) -> str:
    return "type,value,labels,category\n" + "".join(f"{','.join(r)}\n" for r in rows)


def test_a_snapshot_feed_lands_then_dropped_rows_leave_and_an_unchanged_file_changes_nothing(
    upstream: Upstream, http: Http
) -> None:
    pdqs = [random_pdq() for _ in range(5)]
    md5 = random_md5()
    source = feed_source(upstream, page_size=2)
    rows = [("pdq", p, "A1", "csam") for p in pdqs[:4]] + [("md5", md5, "", "se")]
    publish(upstream, source, csv_body(rows))
    first = run(source, http)
    assert (first.status, first.pages, first.added, first.removed) == ("succeeded", 3, 5, 0)
    assert live(source) == {"csam": {("pdq", p) for p in pdqs[:4]}, "se": {("md5", md5)}}
    assert labels_of(source)[pdqs[0]] == ["A1"]

    # The next file drops two rows, adds one and reclassifies another.
    rows = [("pdq", pdqs[0], "B1", "csam"), ("pdq", pdqs[1], "", "csam")]
    rows += [("pdq", pdqs[4], "", "se"), ("md5", md5, "", "se")]
    publish(upstream, source, csv_body(rows))
    second = run(source, http)
    assert second.status == "succeeded" and second.removed == 2
    assert live(source) == {
        "csam": {("pdq", pdqs[0]), ("pdq", pdqs[1])},
        "se": {("pdq", pdqs[4]), ("md5", md5)},
    }
    assert labels_of(source)[pdqs[0]] == ["B1"]

    before, sequence = live(source), sequence_last()
    third = run(source, http)
    assert (third.status, third.pages, third.seen) == ("succeeded", 0, 0)
    assert live(source) == before and sequence_last() == sequence


def test_a_run_interrupted_after_a_page_resumes_to_the_same_lists_as_a_clean_run(
    upstream: Upstream, http: Http
) -> None:
    old = [random_pdq() for _ in range(3)]
    new = [random_pdq() for _ in range(7)]
    interrupted, clean = (
        feed_source(upstream, "interrupted", page_size=3),
        feed_source(upstream, "clean", page_size=3),
    )
    for source in (interrupted, clean):
        publish(upstream, source, csv_body([("pdq", p, "", "") for p in old]))
        assert run(source, http).status == "succeeded"
        publish(upstream, source, csv_body([("pdq", p, "", "") for p in old[:1] + new]))

    def die_after_first_page(current: ImportRun) -> None:
        raise RuntimeError("worker killed")

    broken = run(interrupted, http, on_page=die_after_first_page)
    assert broken.status == "failed" and broken.pages == 1
    interrupted.refresh_from_db()
    assert interrupted.checkpoint["offset"] == 4 and not interrupted.checkpoint["complete"]
    # Nothing was swept yet: the snapshot is not complete.
    assert {v for _, v in live(interrupted)["csam"]} >= set(old)
    resumed = run(interrupted, http)
    assert resumed.status == "succeeded"
    assert resumed.seen == 5  # only the rows after the applied page
    assert run(clean, http).status == "succeeded"
    assert (
        live(interrupted)
        == live(clean)
        == {"csam": {("pdq", p) for p in old[:1] + new}, "se": set()}
    )
    with scopes_disabled():
        assert (
            Entry.objects.filter(hash_list__source=interrupted, removed_seq__isnull=True).count()
            == len(new) + 1
        )


def test_a_delta_feed_adds_and_removes(upstream: Upstream, http: Http) -> None:
    a, b = random_pdq(), random_pdq()
    source = feed_source(upstream, mode="delta")
    publish(upstream, source, f"op,type,value\nadd,pdq,{a}\nadd,pdq,{b}\n")
    run(source, http)
    publish(upstream, source, f"op,type,value\nremove,pdq,{a}\nremove,pdq,{random_pdq()}\n")
    done = run(source, http)
    assert (done.status, done.removed) == ("succeeded", 1)
    assert live(source)["csam"] == {("pdq", b)}


def test_lines_appended_to_a_delta_log_apply_without_replaying_the_old_ones(
    upstream: Upstream, http: Http
) -> None:
    a, b = random_pdq(), random_pdq()
    source = feed_source(upstream, mode="delta")
    log = f"op,type,value\nadd,pdq,{a}\nremove,pdq,{a}\n"
    publish(upstream, source, log)
    run(source, http)
    sequence = sequence_last()
    publish(upstream, source, log + f"add,pdq,{b}\n")
    done = run(source, http)
    assert (done.seen, done.added, done.removed) == (1, 1, 0)
    assert sequence_last() == sequence + 1  # a was not re-added and re-removed
    assert live(source)["csam"] == {("pdq", b)}


def test_broken_rows_are_stored_with_their_line_and_the_rest_lands(
    upstream: Upstream, http: Http
) -> None:
    good = random_pdq()
    source = feed_source(upstream)
    publish(upstream, source, f'type,value\npdq,"broken\nnosuch,00\npdq,{good}\npdq,abc\n')
    done = run(source, http)
    assert (done.status, done.rejected) == ("succeeded", 3)
    with scopes_disabled():
        stored = list(ImportRunError.objects.filter(run=done).values_list("position", "code"))
    assert stored == [("line 2", "bad_row"), ("line 3", "unknown_type"), ("line 5", "wrong_length")]
    assert live(source)["csam"] == {("pdq", good)}


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("<html><body>Login</body></html>", "malformed_page"),
        ("type,value\n", "empty_snapshot"),
    ],
)
def test_a_bad_file_fails_the_run_and_leaves_lists_and_checkpoint_alone(
    upstream: Upstream, http: Http, body: str, code: str
) -> None:
    kept = random_pdq()
    source = feed_source(upstream)
    publish(upstream, source, f"type,value\npdq,{kept}\n")
    run(source, http)
    source.refresh_from_db()
    checkpoint = source.checkpoint
    publish(upstream, source, body)
    done = run(source, http)
    assert (done.status, done.error_code) == ("failed", code)
    source.refresh_from_db()
    assert source.checkpoint == checkpoint
    assert live(source)["csam"] == {("pdq", kept)}


def test_a_refused_token_fails_the_run_as_auth_failed(upstream: Upstream, http: Http) -> None:
    source = feed_source(upstream)
    upstream.routes["/IWF-style.csv"] = Reply("go away", 403)
    done = run(source, http)
    assert (done.status, done.error_code) == ("failed", "auth_failed")
    assert "feed-token" not in done.error_message


def test_stopncii_hashes_land_in_the_se_list_and_withdrawals_leave(
    upstream: Upstream, http: Http
) -> None:
    fake = FakeStopNCII("sub-key", "fn-key")
    upstream.routes[FakeStopNCII.PATH] = fake
    pdqs = [random_pdq() for _ in range(4)]
    md5 = random_md5()
    fake.records = [stopncii_record(p, timestamp=100 + i) for i, p in enumerate(pdqs)]
    fake.records.append(stopncii_record(md5, signal_type="VideoMD5", timestamp=110))
    source = source_services.source_create(
        name="StopNCII",
        kind="stopncii",
        config={
            "url": f"{upstream.url}/v1",
            "subscription_key_env": "HASHHUB_SOURCE_NCII_SUB",
            "function_key_env": "HASHHUB_SOURCE_NCII_FN",
            "page_size": 2,
        },
        actor=SYSTEM,
    )
    first = run(source, http)
    assert (first.status, first.pages, first.added) == ("succeeded", 3, 5)
    assert live(source) == {"csam": set(), "se": {("pdq", p) for p in pdqs} | {("md5", md5)}}
    # Two people withdraw their images; one hash is updated (seen again, still active).
    fake.records += [
        stopncii_record(pdqs[0], status="Withdrawn", timestamp=200),
        stopncii_record(md5, status="Deleted", signal_type="VideoMD5", timestamp=201),
        stopncii_record(pdqs[1], status="Active", timestamp=202),
    ]
    second = run(source, http)
    assert (second.status, second.removed, second.added) == ("succeeded", 2, 0)
    assert live(source)["se"] == {("pdq", p) for p in pdqs[1:]}
    before, sequence = live(source), sequence_last()
    assert run(source, http).status == "succeeded"
    assert live(source) == before and sequence_last() == sequence
    fake.subscription_key = "rotated"
    refused = run(source, http)
    assert (refused.status, refused.error_code) == ("failed", "auth_failed")
