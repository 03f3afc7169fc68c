"""The NCMEC hash-sharing adapter against a real HTTP server on 127.0.0.1 (ncmec_fixtures).

First the adapter alone (pages, checkpoints, failures, hostile XML), then whole runs through
lists.sources.runs into a source's CSAM and SE lists on PostgreSQL.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from django_scopes import scopes_disabled

from hub.audit import Actor
from lists.changes import sequence_last
from lists.hashtypes import get_signal_type
from lists.models import Entry, ImportRun, ImportRunError, Source
from lists.sources import runs
from lists.sources import services as source_services
from lists.sources.adapters import adapter_class
from lists.sources.adapters import ncmec as ncmec_module
from lists.sources.adapters.base import ADD, REMOVE, Credentials, Page
from lists.sources.adapters.http import Http
from lists.sources.adapters.ncmec import NcmecAdapter, parse_time
from lists.sources.errors import SourceError
from tests.lists.ncmec_fixtures import (
    BILLION_LAUGHS,
    PASSWORD,
    USERNAME,
    EntryLog,
    Fault,
    NcmecServer,
    UpstreamEntry,
    deleted,
    external_dtd,
    external_entity,
    image,
    iso,
    random_fingerprints,
    video,
)

T0 = int(datetime(2024, 3, 1, tzinfo=UTC).timestamp())
HOUR = 3600
DAY = 24 * HOUR
ENV = {"HASHHUB_SOURCE_NCMEC_USER": USERNAME, "HASHHUB_SOURCE_NCMEC_PASS": PASSWORD}
SYSTEM = Actor(system="test")


_clients: list[Http] = []


@pytest.fixture(autouse=True)
def _close_http_clients() -> Iterator[None]:
    yield
    while _clients:
        _clients.pop().close()


def fast_http(**kw: Any) -> Http:
    """Retries without waiting (backoff is still computed, and handed to ``sleep``)."""
    options: dict[str, Any] = {
        "attempts": 3,
        "backoff": 0.01,
        "timeout": 5,
        "sleep": lambda s: None,
    }
    client = Http(**(options | kw))
    _clients.append(client)
    return client


def config(server: NcmecServer, **extra: Any) -> dict[str, Any]:
    return {
        "url": server.url,
        "username_env": "HASHHUB_SOURCE_NCMEC_USER",
        "password_env": "HASHHUB_SOURCE_NCMEC_PASS",
        "start": iso(T0),
        "until": iso(T0 + DAY),
        "settle_minutes": 0,
        **extra,
    }


def adapter(server: NcmecServer, http: Http | None = None, **extra: Any) -> NcmecAdapter:
    return NcmecAdapter(
        config=config(server, **extra), credentials=Credentials(ENV), http=http or fast_http()
    )


def read_all(
    server: NcmecServer,
    checkpoint: dict[str, Any] | None = None,
    *,
    http: Http | None = None,
    **extra: Any,
) -> list[Page]:
    """Every page from ``checkpoint`` on, as one run would get them."""
    return list(adapter(server, http, **extra).pages(checkpoint or {}))


def keys(pages: list[Page]) -> list[str]:
    return [record.key for page in pages for record in page.records]


@pytest.fixture
def server() -> Iterator[NcmecServer]:
    with NcmecServer(page_size=10) as running:
        yield running


def spread(count: int, *, start: int = T0, every: int = 60) -> list[UpstreamEntry]:
    """``count`` images of member 42, ``every`` seconds apart from ``start``."""
    return [image(42, f"img{n}", start + n * every) for n in range(count)]


# --- the adapter ------------------------------------------------------------------------------


def test_the_registry_finds_the_adapter() -> None:
    assert adapter_class("ncmec") is NcmecAdapter


def test_it_reads_every_page_of_a_window_by_its_next_links(server: NcmecServer) -> None:
    server.log = EntryLog(spread(25))

    pages = read_all(server)

    assert keys(pages) == [f"42:img{n}" for n in range(25)]
    assert [len(p.records) for p in pages] == [10, 10, 5]
    assert server.requests[0] == "/v2/status"
    entries = server.entries_requests()
    assert entries[0].startswith("/v2/entries?from=2024-03-01T00%3A00%3A00Z&to=2024-03-02T00")
    assert "start=11&size=10&max=25" in entries[1] and "start=21" in entries[2]
    # The window closes only with its last page; before that the checkpoint names the next page.
    assert [p.checkpoint["window_start"] for p in pages] == [iso(T0), iso(T0), iso(T0 + DAY)]
    assert [p.checkpoint["next"] is not None for p in pages] == [True, True, False]
    assert pages[0].checkpoint["window_end"] == iso(T0 + DAY)
    assert pages[-1].checkpoint["window_end"] is None


def test_an_image_becomes_an_add_keyed_by_member_and_id_with_its_four_fingerprints(
    server: NcmecServer,
) -> None:
    entry = image(7, "abc-1", T0 + 5, "B2")
    server.log = EntryLog([entry])

    (record,) = read_all(server)[0].records

    assert (record.op, record.key, record.labels, record.category) == (ADD, "7:abc-1", ("B2",), "")
    prints = dict(entry.fingerprints)
    assert record.hashes == (
        ("md5", prints["md5"]),
        ("sha1", prints["sha1"]),
        ("pdq", prints["pdq"]),
        ("photodna", prints["pdna"]),
    )
    assert "7:abc-1" in record.position and "#1" in record.position


def test_deletions_become_removals_and_videos_keep_only_values_they_inline(
    server: NcmecServer,
) -> None:
    clip = video(3, "v1", T0 + 10)
    server.log = EntryLog(
        [clip, deleted(3, "v0", T0 + 20, kind="video"), deleted(4, "i9", T0 + 30)]
    )

    records = read_all(server)[0].records

    # A page lists its images, then its videos.
    assert [(r.op, r.key) for r in records] == [(REMOVE, "4:i9"), (ADD, "3:v1"), (REMOVE, "3:v0")]
    assert records[1].hashes == (("md5", dict(clip.fingerprints)["md5"]),)  # tmk-pdqf is a link
    assert records[0].hashes == records[2].hashes == ()


def test_an_entry_with_no_usable_fingerprint_releases_what_its_key_held(
    server: NcmecServer,
) -> None:
    linked_only = UpstreamEntry(5, "v7", T0 + 1, "video", False, "A1", (("videntifier", ""),))
    server.log = EntryLog([linked_only])

    (record,) = read_all(server)[0].records

    assert (record.op, record.key) == (REMOVE, "5:v7")


def test_an_earlier_timestamp_on_a_later_page_is_read_before_the_window_moves_on(
    server: NcmecServer,
) -> None:
    # NCMEC's order is not time order: the earliest entry of the window comes last.
    late_first = spread(20, start=T0 + 12 * HOUR)
    early_last = image(42, "early", T0 + 60)
    server.log = EntryLog([*late_first, early_last])

    first = next(iter(adapter(server).pages({})))
    assert first.checkpoint["window_start"] == iso(T0)  # not past the unfinished window
    assert max(r.key for r in first.records) != "42:early"

    # The worker dies here; the next run resumes from the stored checkpoint.
    resumed = read_all(server, first.checkpoint)

    assert "42:early" in keys(resumed)
    assert resumed[-1].checkpoint["window_start"] == iso(T0 + DAY)
    assert len(keys([first, *resumed])) == 21 == len(set(keys([first, *resumed])))


def test_a_resumed_run_reads_again_at_most_the_page_in_flight(server: NcmecServer) -> None:
    server.log = EntryLog(spread(50))
    pages = list(adapter(server).pages({}))
    server.requests.clear()

    resumed = read_all(server, pages[2].checkpoint)

    assert keys(resumed) == keys(pages[3:])
    assert len(server.entries_requests()) == 2
    assert "start=31" in server.entries_requests()[0]


def test_updates_and_deletions_across_two_fetches(server: NcmecServer) -> None:
    log = EntryLog([image(1, "a", T0 + 10, "A1"), image(1, "b", T0 + 20), image(2, "c", T0 + 30)])
    server.log = log
    first = read_all(server)
    assert keys(first) == ["1:a", "1:b", "2:c"]

    fresh = random_fingerprints(pdna=False)
    log.add(
        image(1, "a", T0 + DAY + 50, "A2", fingerprints=fresh),  # an update: same member and id
        deleted(1, "b", T0 + DAY + 40),
        image(2, "d", T0 + DAY + 60),
    )
    second = read_all(server, first[-1].checkpoint, until=iso(T0 + 2 * DAY))

    records = [r for p in second for r in p.records]
    assert [(r.op, r.key) for r in records] == [(ADD, "1:a"), (REMOVE, "1:b"), (ADD, "2:d")]
    assert records[0].labels == ("A2",) and records[0].hashes == fresh
    # The second fetch asked only for time after the first one's checkpoint.
    assert f"from={iso(T0 + DAY).replace(':', '%3A')}" in server.entries_requests()[-1]


def test_a_second_fetch_with_nothing_new_yields_no_records(server: NcmecServer) -> None:
    server.log = EntryLog(spread(5))
    first = read_all(server)

    again = read_all(server, first[-1].checkpoint)

    assert again == []


def test_the_checkpoint_never_passes_now_less_the_settle_margin(
    server: NcmecServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = datetime(2024, 6, 1, 12, tzinfo=UTC)
    monkeypatch.setattr(ncmec_module, "utcnow", lambda: now)
    at = int(now.timestamp())
    server.log = EntryLog([image(1, "old", at - HOUR), image(1, "recent", at - 120)])

    pages = read_all(server, until=None, start=iso(at - DAY), settle_minutes=10)

    assert keys(pages) == ["1:old"]  # two minutes ago is still unsettled
    assert parse_time(pages[-1].checkpoint["window_start"]) == now - timedelta(minutes=10)
    monkeypatch.setattr(ncmec_module, "utcnow", lambda: now + timedelta(minutes=15))
    later = read_all(server, pages[-1].checkpoint, until=None, settle_minutes=10)
    assert keys(later) == ["1:recent"]


def test_a_quiet_history_is_walked_in_growing_windows(server: NcmecServer) -> None:
    server.log = EntryLog(spread(3, start=T0 + 364 * DAY))

    pages = read_all(server, until=iso(T0 + 365 * DAY), window_hours=24, max_window_hours=720)

    assert keys(pages) == ["42:img0", "42:img1", "42:img2"]
    assert len(server.entries_requests()) <= 20
    assert pages[-1].checkpoint["window_start"] == iso(T0 + 365 * DAY)


def test_a_crowded_window_is_shrunk_before_any_of_it_is_yielded(server: NcmecServer) -> None:
    server.log = EntryLog(spread(40, every=30 * 60, start=T0))  # 40 entries over 20 hours

    pages = read_all(server, max_window_entries=15)

    assert sorted(keys(pages)) == sorted(f"42:img{n}" for n in range(40))
    assert len(keys(pages)) == 40
    assert max(p.checkpoint["window_seconds"] for p in pages) < DAY


def test_pages_per_batch_applies_several_upstream_pages_at_once(server: NcmecServer) -> None:
    server.log = EntryLog(spread(45))

    pages = read_all(server, pages_per_batch=2)

    assert [len(p.records) for p in pages] == [20, 20, 5]
    assert "start=21" in pages[0].checkpoint["next"]
    assert pages[-1].checkpoint["next"] is None


def test_the_last_window_says_how_many_records_to_expect(server: NcmecServer) -> None:
    server.log = EntryLog(spread(25))

    pages = read_all(server)

    assert [p.expected for p in pages] == [25, 25, 25]


def test_member_ids_keeps_only_those_members(server: NcmecServer) -> None:
    server.log = EntryLog([image(1, "a", T0 + 1), image(2, "b", T0 + 2), deleted(3, "c", T0 + 3)])

    assert keys(read_all(server, member_ids=[2, 3])) == ["2:b", "3:c"]


@pytest.mark.parametrize(
    ("extra", "url_suffix", "category"),
    [
        ({}, "", ""),
        ({"environment": "exploitative"}, "", "se"),
        ({"environment": "industry"}, "", "csam"),
        ({}, "/exploitative", "se"),
    ],
)
def test_the_environment_gives_the_category(
    extra: dict[str, Any], url_suffix: str, category: str
) -> None:
    with NcmecServer(prefix="/hashsharing" + url_suffix) as server:
        server.log = EntryLog([image(1, "a", T0 + 1), deleted(1, "b", T0 + 2)])
        records = [r for p in read_all(server, **extra) for r in p.records]
    assert {r.category for r in records} == {category}


def test_an_entry_without_an_id_is_reported_with_its_position_and_the_rest_proceeds(
    server: NcmecServer,
) -> None:
    server.log = EntryLog(
        [
            image(1, "a", T0 + 1),
            UpstreamEntry(0, "", T0 + 2, raw="<image><member id='1'>m</member></image>"),
            UpstreamEntry(0, "", T0 + 3, raw="<deletedImage><id>x</id></deletedImage>"),
            image(1, "d", T0 + 4),
        ]
    )

    (page,) = read_all(server)

    assert keys([page]) == ["1:a", "1:d"]
    assert [(e.code, e.position.split()[-1]) for e in page.errors] == [
        ("missing_id", "#2"),
        ("missing_id", "#3"),
    ]
    assert page.errors[0].position.startswith(f"{iso(T0)}..{iso(T0 + DAY)}")


def test_a_malformed_fingerprint_is_passed_on_for_the_runner_to_report(
    server: NcmecServer,
) -> None:
    short = image(1, "a", T0 + 1, fingerprints=(("pdq", "abc123"), ("md5", "00" * 16)))
    server.log = EntryLog([short])

    (record,) = read_all(server)[0].records

    assert record.hashes == (("pdq", "abc123"), ("md5", "00" * 16))


def test_wrong_credentials_fail_with_auth_failed_before_any_page(server: NcmecServer) -> None:
    wrong = NcmecAdapter(
        config=config(server),
        credentials=Credentials(
            {"HASHHUB_SOURCE_NCMEC_USER": USERNAME, "HASHHUB_SOURCE_NCMEC_PASS": "wrong"}
        ),
        http=fast_http(),
    )

    with pytest.raises(SourceError) as raised:
        list(wrong.pages({}))

    assert raised.value.code == "auth_failed"
    assert "wrong" not in raised.value.message
    assert server.entries_requests() == []


def test_an_unset_credentials_variable_fails_with_credentials_missing(server: NcmecServer) -> None:
    missing = NcmecAdapter(config=config(server), credentials=Credentials({}), http=fast_http())

    with pytest.raises(SourceError) as raised:
        list(missing.pages({}))

    assert raised.value.code == "credentials_missing"


def test_server_errors_are_retried_until_the_page_comes(server: NcmecServer) -> None:
    server.log = EntryLog(spread(15))
    server.faults = [Fault(status=500), Fault(status=503)]
    slept: list[float] = []

    pages = read_all(server, http=fast_http(sleep=slept.append))

    assert len(keys(pages)) == 15
    assert len(slept) == 2 and slept[1] > slept[0]  # backoff grows
    assert len(server.entries_requests()) == 4


def test_server_errors_past_the_retries_stop_the_run_after_the_last_good_page(
    server: NcmecServer,
) -> None:
    server.log = EntryLog(spread(25))
    server.faults = [Fault(status=502, skip=1), Fault(status=502), Fault(status=502)]
    stream = adapter(server).pages({})
    pages = [next(stream)]

    with pytest.raises(SourceError) as raised:
        next(stream)

    assert raised.value.code == "http_error"
    assert pages[0].checkpoint["window_start"] == iso(T0)  # what the runner would have stored
    assert keys(read_all(server, pages[0].checkpoint)) == [f"42:img{n}" for n in range(10, 25)]


def test_a_slow_answer_is_retried_and_a_persistently_slow_one_fails_with_timeout(
    server: NcmecServer,
) -> None:
    server.log = EntryLog(spread(5))
    server.faults = [Fault(delay=1.5)]
    pages = read_all(server, http=fast_http(timeout=0.5))
    assert len(keys(pages)) == 5

    server.faults = [Fault(delay=1.5) for _ in range(3)]
    started = time.monotonic()
    with pytest.raises(SourceError) as raised:
        read_all(server, http=fast_http(timeout=0.5))
    assert raised.value.code == "timeout"
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    "body",
    [
        b"<queryResult><images><image>",
        b"not xml at all",
        b"",
        b'<?xml version="1.0" encoding="no-such-encoding"?><queryResult/>',
        b"<status><member id='1'>m</member></status>",  # well-formed, but not a page of entries
    ],
)
def test_a_malformed_page_fails_with_malformed_page(server: NcmecServer, body: bytes) -> None:
    server.log = EntryLog(spread(5))
    server.faults = [Fault(body=body)]

    with pytest.raises(SourceError) as raised:
        read_all(server)

    assert raised.value.code == "malformed_page"


def test_a_next_link_to_another_host_is_refused(server: NcmecServer) -> None:
    body = (
        b'<queryResult xmlns="https://hashsharing.ncmec.org/hashsharing/v2">'
        b"<paging><next>//attacker.example/v2/entries?start=2</next></paging></queryResult>"
    )
    server.faults = [Fault(body=body)]

    with pytest.raises(SourceError) as raised:
        read_all(server)

    assert raised.value.code == "malformed_page"


def test_a_next_link_that_does_not_move_on_is_refused(server: NcmecServer) -> None:
    server.log = EntryLog(spread(15))
    body = (
        b'<queryResult xmlns="https://hashsharing.ncmec.org/hashsharing/v2">'
        b"<paging><next>/v2/entries?from=x&amp;to=y&amp;start=11&amp;size=10&amp;max=15</next>"
        b"</paging></queryResult>"
    )
    server.faults = [Fault(body=body, skip=1)]  # the second page links to itself

    with pytest.raises(SourceError) as raised:
        read_all(server)

    assert raised.value.code == "malformed_page"
    assert len(server.entries_requests()) == 2


def test_closing_the_stream_early_stops_fetching(server: NcmecServer) -> None:
    server.log = EntryLog(spread(200))
    stream = cast(Generator[Page, None, None], adapter(server).pages({}))
    next(stream)

    stream.close()
    fetched = len(server.entries_requests())
    time.sleep(0.3)

    assert fetched <= 5  # the page handed out, and at most a few read ahead
    assert len(server.entries_requests()) == fetched


@pytest.fixture
def canary() -> Iterator[NcmecServer]:
    """A second server that must never be asked anything by a hostile document."""
    with NcmecServer(prefix="") as running:
        yield running


def hostile_documents(canary: NcmecServer) -> list[bytes]:
    return [
        BILLION_LAUGHS,
        external_entity("file:///etc/passwd"),
        external_entity(f"{canary.url}/secret"),
        external_dtd(f"{canary.url}/evil.dtd"),
        # The same attack in another encoding: the check reads what the parser would read.
        BILLION_LAUGHS.replace(b'version="1.0"', b'version="1.0" encoding="UTF-16"')
        .decode("ascii")
        .encode("utf-16"),
        # A DTD that declares no entity at all is refused too (no DTD is expected).
        b'<?xml version="1.0"?><!DOCTYPE queryResult [<!ELEMENT queryResult ANY>]><queryResult/>',
    ]


@pytest.mark.parametrize("which", range(6))
@pytest.mark.parametrize("endpoint", ["/v2/entries", "/v2/status"])
def test_xml_with_entities_or_a_dtd_is_refused_unread(
    server: NcmecServer, canary: NcmecServer, which: int, endpoint: str
) -> None:
    server.faults = [Fault(body=hostile_documents(canary)[which], path=endpoint)]
    started = time.monotonic()

    with pytest.raises(SourceError) as raised:
        read_all(server)

    assert raised.value.code == "unsafe_xml"
    assert "root:" not in raised.value.message
    assert canary.requests == []
    assert time.monotonic() - started < 2


def test_a_status_answer_without_a_member_fails(server: NcmecServer) -> None:
    server.faults = [Fault(body=b"<status><username>x</username></status>", path="/v2/status")]

    with pytest.raises(SourceError) as raised:
        read_all(server)

    assert raised.value.code == "malformed_page"


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"url": ""}, "url"),
        ({"url": "ftp://example.test/x"}, "url"),
        ({"url": "https://user:pw@example.test/hashsharing"}, "url"),
        ({"password_env": ""}, "password_env"),
        ({"start": "last tuesday"}, "ISO"),
        ({"window_hours": 0}, "window_hours"),
        ({"window_hours": "24"}, "window_hours"),
        ({"environment": "staging"}, "environment"),
        ({"member_ids": ["42"]}, "member_ids"),
        ({"pasword_env": "HASHHUB_SOURCE_X"}, "pasword_env"),
    ],
)
def test_check_config_names_what_is_wrong(
    server: NcmecServer, change: dict[str, Any], complaint: str
) -> None:
    with pytest.raises(SourceError) as raised:
        NcmecAdapter.check_config(config(server) | change)

    assert raised.value.code == "bad_config"
    assert complaint in raised.value.message


def test_an_unusable_checkpoint_fails_with_bad_checkpoint(server: NcmecServer) -> None:
    bad = {"window_start": iso(T0), "window_end": iso(T0 + DAY), "next": "https://elsewhere/x"}

    with pytest.raises(SourceError) as raised:
        read_all(server, bad)

    assert raised.value.code == "bad_checkpoint"


# --- whole runs through lists.sources.runs ----------------------------------------------------

Hashes = set[tuple[str, str, tuple[str, ...]]]


def canonical(entry: UpstreamEntry) -> Hashes:
    """The (type, value, labels) a live upstream image or video should leave in a list."""
    names = {"md5": "md5", "sha1": "sha1", "pdq": "pdq", "pdna": "photodna"}
    labels = (entry.classification,) if entry.classification else ()
    return {
        (names[name], get_signal_type(names[name]).parse(value).hex(), labels)
        for name, value in entry.fingerprints
        if name in names
    }


def live(source: Source) -> dict[str, Hashes]:
    """category -> {(type, value, labels)} of the source's live entries."""
    found: dict[str, Hashes] = {"csam": set(), "se": set()}
    with scopes_disabled():
        rows = Entry.objects.filter(hash_list__source=source, removed_seq__isnull=True)
        for entry in rows.select_related("hash", "hash_list"):
            found[entry.hash_list.category].add(
                (entry.hash.signal_type, bytes(entry.hash.value).hex(), tuple(entry.labels))
            )
    return found


def removed(source: Source) -> dict[str, set[tuple[str, str]]]:
    """category -> {(type, value)} the source's lists hold a removal of."""
    found: dict[str, set[tuple[str, str]]] = {"csam": set(), "se": set()}
    with scopes_disabled():
        rows = Entry.objects.filter(hash_list__source=source, removed_seq__isnull=False)
        for entry in rows.select_related("hash", "hash_list"):
            found[entry.hash_list.category].add(
                (entry.hash.signal_type, bytes(entry.hash.value).hex())
            )
    return found


def make_source(server: NcmecServer, name: str = "NCMEC", **extra: Any) -> Source:
    return source_services.source_create(
        name=name, kind="ncmec", config=config(server, **extra), actor=SYSTEM
    )


def run(source: Source, credentials: Credentials | None = None, **extra_config: Any) -> ImportRun:
    if extra_config:
        source.refresh_from_db()
        source_services.source_update(
            source=source, config=source.config | extra_config, actor=SYSTEM
        )
    queued = runs.run_create(source=source, trigger="test", enqueue=False)
    return runs.run_execute(
        run_id=queued.pk, http=fast_http(), credentials=credentials or Credentials(ENV)
    )


@pytest.fixture
def exploitative() -> Iterator[NcmecServer]:
    """NCMEC's Exploitative environment: its entries belong in the SE list."""
    with NcmecServer(page_size=10, prefix="/exploitative") as running:
        yield running


@pytest.mark.django_db
def test_two_fetches_leave_the_right_live_entries_in_the_csam_and_se_lists(
    server: NcmecServer, exploitative: NcmecServer
) -> None:
    a, b, c = image(1, "a", T0 + 10, "A1"), image(1, "b", T0 + 20, "B1"), video(2, "c", T0 + 30)
    s1, s2 = image(9, "s1", T0 + 40, ""), image(9, "s2", T0 + 50, "")
    server.log = EntryLog([*spread(12, start=T0 + 100), a, b, c, deleted(5, "never-seen", T0 + 5)])
    exploitative.log = EntryLog([s1, s2])
    industry, se_source = make_source(server), make_source(exploitative, name="NCMEC SE")

    first = run(industry), run(se_source)

    assert [r.status for r in first] == ["succeeded", "succeeded"]
    csam_expected = {h for e in [a, b, c] for h in canonical(e)}
    assert csam_expected <= live(industry)["csam"]
    assert live(industry)["se"] == set() == live(se_source)["csam"]
    assert live(se_source)["se"] == canonical(s1) | canonical(s2)
    assert first[0].pages == 2 and first[0].seen == 16

    a2 = image(1, "a", T0 + DAY + 10, "A2", fingerprints=random_fingerprints(pdna=False))
    d = image(2, "d", T0 + DAY + 20, "B2")
    server.log.add(a2, deleted(1, "b", T0 + DAY + 30), d)
    exploitative.log.add(deleted(9, "s1", T0 + DAY + 5))
    before = live(industry)["csam"]

    second = run(industry, until=iso(T0 + 2 * DAY)), run(se_source, until=iso(T0 + 2 * DAY))

    assert [r.status for r in second] == ["succeeded", "succeeded"]
    now_live = live(industry)["csam"]
    assert now_live == (before - canonical(a) - canonical(b)) | canonical(a2) | canonical(d)
    assert {(t, v) for t, v, _ in canonical(a) | canonical(b)} <= removed(industry)["csam"]
    assert live(se_source)["se"] == canonical(s2)
    assert (second[0].seen, second[0].updated) == (3, 1)
    assert second[0].removed == len(canonical(a) | canonical(b))
    assert second[0].checkpoint_after["window_start"] == iso(T0 + 2 * DAY)


@pytest.mark.django_db
def test_a_second_run_with_nothing_new_changes_nothing(server: NcmecServer) -> None:
    server.log = EntryLog([*spread(15), deleted(42, "img3", T0 + 2 * HOUR)])
    source = make_source(server)
    assert run(source).status == "succeeded"
    state, sequence = (live(source), removed(source)), sequence_last()

    again = run(source)

    assert again.status == "succeeded"
    assert (again.seen, again.added, again.updated, again.removed) == (0, 0, 0, 0)
    assert (live(source), removed(source)) == state
    assert sequence_last() == sequence


@pytest.mark.django_db
def test_a_hash_two_members_share_stays_until_both_delete_it(server: NcmecServer) -> None:
    shared = random_fingerprints(pdna=False)
    server.log = EntryLog(
        [image(1, "x", T0 + 1, fingerprints=shared), image(2, "y", T0 + 2, fingerprints=shared)]
    )
    source = make_source(server)
    run(source)
    server.log.add(deleted(1, "x", T0 + DAY + 1))

    run(source, until=iso(T0 + 2 * DAY))
    assert {(t, v) for t, v, _ in live(source)["csam"]} == {
        (t, get_signal_type(t).parse(v).hex()) for t, v in shared
    }

    server.log.add(deleted(2, "y", T0 + 2 * DAY + 1))
    run(source, until=iso(T0 + 3 * DAY))
    assert live(source)["csam"] == set()


@pytest.mark.django_db
def test_a_malformed_page_fails_the_run_and_a_later_run_ends_like_a_clean_one(
    server: NcmecServer,
) -> None:
    upstream = [*spread(25), deleted(42, "img2", T0 + HOUR), image(42, "img4", T0 + 2 * HOUR, "B2")]
    server.log = EntryLog(upstream)
    source = make_source(server)
    server.faults = [Fault(body=b"<queryResult><images>", skip=1)]  # the second page is broken
    failed = run(source)

    assert (failed.status, failed.error_code) == ("failed", "malformed_page")
    source.refresh_from_db()
    assert source.checkpoint["window_start"] == iso(T0)
    assert "start=11" in source.checkpoint["next"]
    assert len(live(source)["csam"]) > 0  # the first page stays applied

    assert run(source).status == "succeeded"
    clean = make_source(server, name="NCMEC clean")
    assert run(clean).status == "succeeded"
    assert (live(source), removed(source)) == (live(clean), removed(clean))


@pytest.mark.django_db
def test_bad_records_are_stored_with_their_position_and_the_rest_applies(
    server: NcmecServer,
) -> None:
    good = image(1, "good", T0 + 1)
    server.log = EntryLog(
        [
            good,
            image(1, "short-pdq", T0 + 2, fingerprints=(("pdq", "abc123"),)),
            UpstreamEntry(0, "", T0 + 3, raw="<image><member id='1'>m</member></image>"),
        ]
    )
    source = make_source(server)

    result = run(source)

    assert result.status == "succeeded"
    assert live(source)["csam"] == canonical(good)
    with scopes_disabled():
        errors = list(ImportRunError.objects.filter(run=result).values_list("position", "code"))
    assert result.rejected == len(errors) == 2
    positions = dict((code, position) for position, code in errors)
    assert "1:short-pdq" in positions["wrong_length"] and "#2" in positions["wrong_length"]
    assert positions["missing_id"].endswith("#3")


@pytest.mark.django_db
def test_a_run_with_wrong_credentials_fails_and_changes_nothing(server: NcmecServer) -> None:
    server.log = EntryLog(spread(3))
    source = make_source(server)

    result = run(
        source, credentials=Credentials(ENV | {"HASHHUB_SOURCE_NCMEC_PASS": "something else"})
    )

    assert (result.status, result.error_code) == ("failed", "auth_failed")
    source.refresh_from_db()
    assert source.checkpoint == {} and source.last_error.startswith("auth_failed")
    assert live(source) == {"csam": set(), "se": set()}
