"""Issue 18 for importers: no input an upstream or a staff member can send crashes an import.

Deeply nested JSON, numbers of thousands of digits, NUL characters and bodies too large (plainly,
chunked, or as a gzip bomb) each end as a record's error with its position while the rest
lands, or as a clean failure of the run that applied nothing of the page, with the reason
stored on the run. Upstreams are real HTTP servers on 127.0.0.1; hashes are random.
"""

from __future__ import annotations

import gzip
import io
import json
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django import forms
from django.core.management import CommandError, call_command
from django_scopes import scopes_disabled

from hub.audit import Actor
from hub.lib.jsonsafe import JSONLimitError, loads_bounded
from lists.models import Entry, ImportRun, ImportRunError, Source
from lists.sources import runs
from lists.sources import services as source_services
from lists.sources.adapters.base import Credentials
from lists.sources.adapters.feed import FeedAdapter, parse_upload
from lists.sources.adapters.hashhub import HashHubAdapter
from lists.sources.adapters.http import Http
from lists.sources.errors import SourceError
from lists.sources.forms import ConfigField
from tests.lists.feed_fixtures import (
    Reply,
    Request,
    Upstream,
    quick_http,
    random_pdq,
    serve_upstream,
    stopncii_record,
)

pytestmark = pytest.mark.django_db

SYSTEM = Actor(system="test")
KEYS = {
    "HASHHUB_SOURCE_NCII_SUB": "sub-key",
    "HASHHUB_SOURCE_NCII_FN": "fn-key",
    "HASHHUB_SOURCE_PEER_KEY": "peer-key",
}
DEEP = 5000  # a few kilobytes of brackets: Python's decoder raised RecursionError at ~1,000
HUGE_NUMBER = "9" * 5000  # int() refuses more than 4,300 digits with a ValueError of its own


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    yield from serve_upstream()


@pytest.fixture
def http() -> Iterator[Http]:
    yield from quick_http()


def run(source: Source, http: Http) -> ImportRun:
    queued = runs.run_create(source=source, trigger="test", enqueue=False)
    return runs.run_execute(run_id=queued.pk, http=http, credentials=Credentials(KEYS))


def live(source: Source) -> set[str]:
    with scopes_disabled():
        return {
            bytes(value).hex()
            for value in Entry.objects.filter(
                hash_list__source=source, removed_seq__isnull=True
            ).values_list("hash__value", flat=True)
        }


def errors_of(done: ImportRun) -> list[tuple[str, str, str]]:
    with scopes_disabled():
        return list(
            ImportRunError.objects.filter(run=done)
            .order_by("pk")
            .values_list("position", "code", "message")
        )


def feed_source(url: str, **config: Any) -> Source:
    return source_services.source_create(
        name="Feed", kind="feed", config={"url": url, **config}, actor=SYSTEM
    )


def stopncii_source(upstream: Upstream) -> Source:
    return source_services.source_create(
        name="StopNCII",
        kind="stopncii",
        config={
            "url": f"{upstream.url}/v1",
            "subscription_key_env": "HASHHUB_SOURCE_NCII_SUB",
            "function_key_env": "HASHHUB_SOURCE_NCII_FN",
        },
        actor=SYSTEM,
    )


def peer_source(upstream: Upstream) -> Source:
    return source_services.source_create(
        name="Peer",
        kind="hashhub",
        config={"url": upstream.url, "api_key_env": "HASHHUB_SOURCE_PEER_KEY"},
        actor=SYSTEM,
    )


def jsonl(*rows: str) -> str:
    return "".join(f"{row}\n" for row in rows)


def row(value: str, extra: str = "") -> str:
    """A JSON line of one PDQ, with ``extra`` raw JSON members (``, "key": value``)."""
    return '{"type": "pdq", "value": "' + value + '"' + extra + "}"


def assert_failed_cleanly(done: ImportRun, source: Source, code: str, *words: str) -> None:
    """The run failed with ``code`` and a sentence holding ``words``, stored for staff too."""
    assert (done.status, done.error_code) == ("failed", code)
    for word in words:
        assert word in done.error_message
    source.refresh_from_db()
    assert source.last_error.startswith(f"{code}: ")


# --- JSON lines feeds: a bad record is its line's error, the rest lands ---------------------


@pytest.mark.parametrize(
    "deep_labels",
    [
        # As deep as a line (MAX_LINE, 8 KiB) holds when every bracket is closed...
        "[" * 4000 + "]" * 4000,
        # ...and 5,000 levels that a truncated record opens.
        "[" * DEEP,
    ],
    ids=["closed", "truncated"],
)
def test_a_json_lines_record_nested_thousands_deep_is_its_lines_error_and_the_rest_lands(
    upstream: Upstream, http: Http, deep_labels: str
) -> None:
    first, last = random_pdq(), random_pdq()
    body = jsonl(row(first), row(random_pdq(), f', "labels": {deep_labels}'), row(last))
    upstream.routes["/feed.jsonl"] = Reply(body)
    source = feed_source(f"{upstream.url}/feed.jsonl")
    done = run(source, http)
    assert (done.status, done.added, done.rejected) == ("succeeded", 2, 1)
    [(position, code, message)] = errors_of(done)
    assert (position, code) == ("line 2", "bad_json")
    assert "more than 32 levels deep" in message
    assert live(source) == {first, last}


def test_a_huge_number_in_a_json_lines_record_is_its_lines_error_even_on_the_first_line(
    upstream: Upstream, http: Http
) -> None:
    # The first line decides that a file is JSON lines: a number of 5,000 digits made it "not
    # JSON" there, and the whole file was refused for one record.
    kept = [random_pdq(), random_pdq()]
    body = jsonl(
        row(random_pdq(), f', "seen": {HUGE_NUMBER}'),
        row(kept[0]),
        row(random_pdq(), ', "seen": 1e999'),
        row(kept[1]),
    )
    upstream.routes["/feed.jsonl"] = Reply(body)
    source = feed_source(f"{upstream.url}/feed.jsonl")
    done = run(source, http)
    assert (done.status, done.added, done.rejected) == ("succeeded", 2, 2)
    found = errors_of(done)
    assert [(p, c) for p, c, _ in found] == [("line 1", "bad_json"), ("line 3", "bad_json")]
    assert "number of more than 100 characters" in found[0][2]
    assert "not finite" in found[1][2]
    assert live(source) == set(kept)


def test_a_nul_in_a_json_lines_record_is_its_lines_error(upstream: Upstream, http: Http) -> None:
    # "\u0000" decodes to a character PostgreSQL's text cannot hold: as a record's id it failed
    # the whole page with an internal error.
    kept = random_pdq()
    body = jsonl(row(kept, ', "id": "a"'), row(random_pdq(), ', "id": "b\\u0000c"'))
    upstream.routes["/feed.jsonl"] = Reply(body)
    source = feed_source(f"{upstream.url}/feed.jsonl", id_field="id")
    done = run(source, http)
    assert (done.status, done.added, done.rejected) == ("succeeded", 1, 1)
    [(position, code, message)] = errors_of(done)
    assert (position, code) == ("line 2", "bad_json")
    assert "NUL" in message
    assert live(source) == {kept}


def test_an_uploaded_row_whose_record_outgrows_a_line_still_reads() -> None:
    # parse_upload escapes each non-ASCII character as six; the records line of a row of
    # 8 KiB was then too long for the run, which called the upload "damaged" and stopped.
    good = random_pdq()
    data = f"type,value,labels\npdq,{random_pdq()},{'é' * 4000}\npdq,{good},a1\n".encode()
    parsed = parse_upload({}, data)
    adapter = FeedAdapter(
        config={"upload": "up1"},
        credentials=Credentials({}),
        http=Http(attempts=1),
        uploaded={"up1": parsed.records},
    )
    pages = list(adapter.pages({}))
    adapter.http.close()
    assert [r.hashes[0][1] for page in pages for r in page.records][-1] == good
    assert sum(len(page.records) for page in pages) == 2


# --- paged JSON upstreams: a page over the bounds fails the run, and nothing of it lands -----

FIRST_PDQ = random_pdq()


def deep_stopncii_page(request: Request) -> Reply:
    """Page one is fine and says there is more; page two hides a record 5,000 levels deep."""
    if not request.query.get("nextPageToken"):
        return Reply.json(
            {
                "count": 1,
                "nextPageToken": "page-2",
                "hasMoreRecords": True,
                "hashRecords": [stopncii_record(FIRST_PDQ, timestamp=100)],
            }
        )
    good = json.dumps(stopncii_record(random_pdq(), timestamp=101))
    deep = json.dumps(stopncii_record(random_pdq(), timestamp=102))[:-1]
    body = (
        '{"count": 2, "hasMoreRecords": false, "nextSetTimestamp": 103, "hashRecords": ['
        f'{good}, {deep}, "CSPFeedbacks": {"[" * DEEP}{"]" * DEEP}}}]}}'
    )
    return Reply(body, headers={"Content-Type": "application/json"})


def test_a_stopncii_page_nested_5000_deep_fails_the_run_after_the_pages_before_it(
    upstream: Upstream, http: Http
) -> None:
    upstream.routes["/v1/FetchHashes"] = deep_stopncii_page
    source = stopncii_source(upstream)
    done = run(source, http)
    assert_failed_cleanly(done, source, "malformed_page", "page 2", "more than 32 levels deep")
    # Page one was applied with its checkpoint; nothing of page two was.
    assert (done.pages, done.added) == (1, 1)
    assert live(source) == {FIRST_PDQ}
    assert source.checkpoint == {"updated_after": 10, "page_token": "page-2"}


@pytest.mark.parametrize(
    ("number", "words"),
    [
        (HUGE_NUMBER, "a number of more than 100 characters"),
        ("NaN", "not finite"),
    ],
)
def test_a_stopncii_page_with_a_number_it_cannot_hold_fails_the_run_cleanly(
    upstream: Upstream, http: Http, number: str, words: str
) -> None:
    record = json.dumps(stopncii_record(random_pdq()))
    body = f'{{"hasMoreRecords": false, "count": {number}, "hashRecords": [{record}]}}'
    upstream.routes["/v1/FetchHashes"] = Reply(body)
    source = stopncii_source(upstream)
    done = run(source, http)
    assert_failed_cleanly(done, source, "malformed_page", "page 1", words)
    assert live(source) == set()
    assert source.checkpoint == {}


def test_a_stopncii_record_with_an_absurd_time_is_its_error_and_does_not_move_the_window(
    upstream: Upstream, http: Http
) -> None:
    # A timestamp of 31 digits became the checkpoint: every later record would be skipped.
    kept = random_pdq()
    records = [
        stopncii_record(random_pdq(), timestamp=10**30),
        stopncii_record(kept, timestamp=500),
    ]
    upstream.routes["/v1/FetchHashes"] = Reply.json(
        {"count": 2, "hasMoreRecords": False, "hashRecords": records}
    )
    source = stopncii_source(upstream)
    done = run(source, http)
    assert (done.status, done.added, done.rejected) == ("succeeded", 1, 1)
    [(position, code, _)] = errors_of(done)
    assert (position, code) == ("FetchHashes page 1, record 1", "bad_timestamp")
    assert live(source) == {kept}
    source.refresh_from_db()
    assert source.checkpoint == {"updated_after": 500, "page_token": ""}


def export_item(seq: int, value: str, **list_fields: Any) -> dict[str, Any]:
    peer_list = {"id": "L1", "name": "n", "category": "csam", "tier": "own", **list_fields}
    return {"seq": seq, "op": "add", "type": "pdq", "value": value, "list": peer_list}


def test_a_peer_export_page_nested_5000_deep_fails_the_run_after_the_pages_before_it(
    upstream: Upstream, http: Http
) -> None:
    first = random_pdq()

    def export(request: Request) -> Reply:
        if not request.query.get("cursor"):
            page = {"items": [export_item(1, first)], "next_cursor": "c1", "has_more": True}
            return Reply.json(page)
        good = json.dumps(export_item(2, random_pdq()))
        deep = f'{{"seq": 3, "op": "add", "list": {"[" * DEEP}{"]" * DEEP}}}'
        body = f'{{"items": [{good}, {deep}], "next_cursor": "c2", "has_more": false}}'
        return Reply(body, headers={"Content-Type": "application/json"})

    upstream.routes["/api/v1/export"] = export
    source = peer_source(upstream)
    done = run(source, http)
    assert_failed_cleanly(done, source, "malformed_page", "cursor c1", "more than 32 levels")
    assert (done.pages, done.added) == (1, 1)
    assert live(source) == {first}
    assert source.checkpoint == {"cursor": "c1"}


def test_a_peer_cursor_holding_a_nul_fails_the_run_cleanly(upstream: Upstream, http: Http) -> None:
    # The checkpoint is jsonb, which cannot hold "\u0000": storing it was an internal error.
    body = json.dumps(
        {"items": [export_item(1, random_pdq())], "next_cursor": "c\x00", "has_more": False}
    )
    upstream.routes["/api/v1/export"] = Reply(body)
    source = peer_source(upstream)
    done = run(source, http)
    assert_failed_cleanly(done, source, "malformed_page")
    assert live(source) == set()


def test_a_peer_item_with_a_list_for_its_tier_is_skipped_not_a_crash(
    upstream: Upstream, http: Http
) -> None:
    kept = random_pdq()
    items = [export_item(1, random_pdq(), tier=["own"]), export_item(2, kept)]
    upstream.routes["/api/v1/export"] = Reply.json(
        {"items": items, "next_cursor": "c1", "has_more": False}
    )
    adapter = HashHubAdapter(
        config={"url": upstream.url, "api_key_env": "HASHHUB_SOURCE_PEER_KEY"},
        credentials=Credentials(KEYS),
        http=http,
    )
    [page] = list(adapter.pages({}))
    assert [r.hashes[0][1] for r in page.records] == [kept]


# --- bodies over HASHHUB_SOURCE_MAX_BODY_BYTES -------------------------------------------------

CAP = 64 * 1024


@pytest.fixture
def capped(settings: Any) -> Iterator[Http]:
    """An Http client made under a 64 KiB HASHHUB_SOURCE_MAX_BODY_BYTES."""
    settings.HASHHUB_SOURCE_MAX_BODY_BYTES = CAP
    client = Http(timeout=5, attempts=2, backoff=0, sleep=lambda _: None)
    try:
        yield client
    finally:
        client.close()


def csv_of(count: int) -> tuple[str, list[str]]:
    values = [random_pdq() for _ in range(count)]
    return "type,value\n" + "".join(f"pdq,{v}\n" for v in values), values


class ChunkedUpstream:
    """Answers every GET with a chunked body (no Content-Length): ``chunks`` of ``chunk`` bytes.

    ``sent`` counts the chunks written before the client hung up.
    """

    def __init__(self, chunk: bytes, chunks: int, headers: dict[str, str] | None = None) -> None:
        self.sent = 0
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Transfer-Encoding", "chunked")
                self.send_header("Connection", "close")
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                try:
                    for _ in range(chunks):
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                        upstream.sent += 1
                    self.wfile.write(b"0\r\n\r\n")
                except OSError:
                    pass  # the client stopped reading

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        host, port = self._server.server_address[:2]
        self.url = f"http://{host!s}:{port}/feed.csv"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


def test_a_feed_announcing_more_than_the_cap_fails_the_run_before_its_body_is_read(
    upstream: Upstream, capped: Http
) -> None:
    body, _ = csv_of(2000)  # some 140 KB, announced by its Content-Length
    upstream.routes["/feed.csv"] = Reply(body)
    source = feed_source(f"{upstream.url}/feed.csv")
    done = run(source, capped)
    assert_failed_cleanly(
        done, source, "body_too_large", "announced more than 65,536 bytes", "MAX_BODY_BYTES"
    )
    assert live(source) == set()
    assert source.checkpoint == {}
    assert len(upstream.requests) == 1  # not retried


def test_a_chunked_feed_is_refused_as_soon_as_it_passes_the_cap(capped: Http) -> None:
    line = f"pdq,{random_pdq()}\n".encode()
    server = ChunkedUpstream(b"type,value\n" + line * 200, chunks=40)  # 40 x 14 KB
    try:
        source = feed_source(server.url)
        done = run(source, capped)
    finally:
        server.stop()
    assert_failed_cleanly(done, source, "body_too_large", "answered more than 65,536 bytes")
    assert live(source) == set()


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_gzip_bomb_is_refused_once_it_inflates_past_the_cap(
    upstream: Upstream, capped: Http, chunked: bool
) -> None:
    bomb = gzip.compress(b"type,value\n" + b"0" * (16 << 20))  # 16 MiB in some 16 KB
    assert len(bomb) < CAP
    if chunked:
        server = ChunkedUpstream(bomb, chunks=1, headers={"Content-Encoding": "gzip"})
        url = server.url
    else:
        upstream.routes["/feed.csv"] = Reply(bomb, headers={"Content-Encoding": "gzip"})
        url = f"{upstream.url}/feed.csv"
    try:
        source = feed_source(url)
        done = run(source, capped)
    finally:
        if chunked:
            server.stop()
    assert_failed_cleanly(done, source, "body_too_large", "once decompressed, more than 65,536")
    assert live(source) == set()


@pytest.mark.parametrize("coding", ["gzip", "deflate", "raw-deflate"])
def test_a_compressed_feed_under_the_cap_lands(
    upstream: Upstream, capped: Http, coding: str
) -> None:
    body, values = csv_of(100)
    if coding == "gzip":
        packed = gzip.compress(body.encode())
    else:
        squeeze = zlib.compressobj(wbits=-15 if coding == "raw-deflate" else 15)
        packed = squeeze.compress(body.encode()) + squeeze.flush()
    upstream.routes["/feed.csv"] = Reply(
        packed, headers={"Content-Encoding": coding.replace("raw-", "")}
    )
    source = feed_source(f"{upstream.url}/feed.csv")
    done = run(source, capped)
    assert (done.status, done.added) == ("succeeded", 100)
    assert live(source) == set(values)
    assert upstream.requests[0].headers["accept-encoding"] == "gzip, deflate"


def test_a_body_in_a_coding_not_asked_for_is_refused(upstream: Upstream, capped: Http) -> None:
    upstream.routes["/feed.csv"] = Reply(b"\x1b\x00\x00", headers={"Content-Encoding": "br"})
    with pytest.raises(SourceError) as refused:
        capped.get(f"{upstream.url}/feed.csv")
    assert refused.value.code == "malformed_page"
    assert "(br)" in refused.value.message


def test_an_adapter_may_ask_for_a_lower_cap_than_the_settings(
    upstream: Upstream, http: Http
) -> None:
    upstream.routes["/page"] = Reply(b"x" * 5000)
    assert len(http.get(f"{upstream.url}/page").content) == 5000
    with pytest.raises(SourceError) as refused:
        http.get(f"{upstream.url}/page", max_bytes=4096)
    assert refused.value.code == "body_too_large"
    assert "MAX_BODY_BYTES" not in refused.value.message  # it was not the setting's cap


# --- values that go into request headers -------------------------------------------------------


@pytest.mark.parametrize("value", ["Bearer a\r\nX-Injected: 1", "Bearer naïve", "Bearer \x00"])
def test_a_header_value_a_header_cannot_carry_is_refused_before_any_request(
    upstream: Upstream, http: Http, value: str
) -> None:
    upstream.routes["/feed.csv"] = Reply("type,value\n")
    with pytest.raises(SourceError) as refused:
        http.get(f"{upstream.url}/feed.csv", headers={"Authorization": value})
    assert refused.value.code == "bad_config"
    assert "Authorization header" in refused.value.message
    assert value not in refused.value.message
    assert upstream.requests == []


def test_a_stored_token_with_a_line_break_fails_the_run_as_bad_config(
    upstream: Upstream, http: Http
) -> None:
    upstream.routes["/feed.csv"] = Reply("type,value\n")
    source = feed_source(f"{upstream.url}/feed.csv", token_env="HASHHUB_SOURCE_FEED_TOKEN")
    queued = runs.run_create(source=source, trigger="test", enqueue=False)
    done = runs.run_execute(
        run_id=queued.pk,
        http=http,
        credentials=Credentials({"HASHHUB_SOURCE_FEED_TOKEN": "tok\r\nX-Injected: 1"}),
    )
    assert_failed_cleanly(done, source, "bad_config", "Authorization header")
    assert "X-Injected" not in done.error_message
    assert upstream.requests == []


# --- configs typed by staff --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[" * DEEP + "]" * DEEP, "levels deep"),
        ('{"page_size": ' + HUGE_NUMBER + "}", "number of more than 100 characters"),
        ('{"page_size": 1e999}', "not finite"),
        ('{"columns": ["a\\u0000"]}', "NUL"),
    ],
    ids=["deep", "huge-number", "infinite", "nul"],
)
def test_a_config_box_refuses_json_it_cannot_keep_with_a_form_error(text: str, words: str) -> None:
    with pytest.raises(forms.ValidationError) as refused:
        ConfigField().clean(text)
    assert words in str(refused.value.messages)


@pytest.mark.parametrize(
    "text", ["[" * DEEP + "]" * DEEP, '{"page_size": ' + HUGE_NUMBER + "}"], ids=["deep", "huge"]
)
def test_addsource_refuses_config_json_it_cannot_keep_as_bad_config(text: str) -> None:
    with pytest.raises(CommandError) as refused:
        call_command(
            "addsource",
            "--name",
            "F",
            "--kind",
            "feed",
            "--url",
            "https://x.example/f",
            "--config-json",
            text,
            stdout=io.StringIO(),
            stderr=io.StringIO(),
        )
    assert str(refused.value).startswith("bad_config: --config-json is refused")
    assert not Source.objects.filter(name="F").exists()


# --- the shared loader ---------------------------------------------------------------------------


def test_the_loader_measures_depth_outside_strings_only() -> None:
    text = json.dumps({"a": "[" * 100, "b": '\\"[[[[', "c": [[["x"]]]})
    assert loads_bounded(text, max_depth=4)["c"] == [[["x"]]]
    with pytest.raises(JSONLimitError) as refused:
        loads_bounded(text, max_depth=3)
    assert refused.value.code == "too_deep"
    assert text[refused.value.offset or 0] == "["


def test_the_loader_refuses_a_text_over_its_size_in_bytes() -> None:
    with pytest.raises(JSONLimitError) as refused:
        loads_bounded('"' + "é" * 600 + '"', max_bytes=1000)
    assert refused.value.code == "too_large"
    assert loads_bounded(b'["' + "é".encode() * 400 + b'"]', max_bytes=1000) == ["é" * 400]
