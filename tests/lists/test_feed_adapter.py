"""The file/URL feed adapter against a real HTTP server: formats, snapshots, deltas, bad rows."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from lists.hashtypes import get_signal_type
from lists.sources.adapters import adapter_class
from lists.sources.adapters.base import ADD, REMOVE, Credentials, Page, Record
from lists.sources.adapters.feed import FeedAdapter
from lists.sources.adapters.http import Http
from lists.sources.errors import SourceError
from tests.lists.feed_fixtures import (
    Reply,
    Upstream,
    quick_http,
    random_md5,
    random_pdq,
    serve_upstream,
)


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    yield from serve_upstream()


@pytest.fixture
def http() -> Iterator[Http]:
    yield from quick_http()


def feed(upstream: Upstream, http: Http, body: bytes | str, **config: Any) -> FeedAdapter:
    upstream.routes["/feed"] = Reply(body, headers={"Content-Type": "text/csv"})
    environ = {"HASHHUB_SOURCE_FEED_TOKEN": "s3cret"} if "token_env" in config else {}
    adapter = adapter_class("feed")(
        config={"url": f"{upstream.url}/feed", **config},
        credentials=Credentials(environ),
        http=http,
    )
    assert isinstance(adapter, FeedAdapter)
    return adapter


def pages(adapter: FeedAdapter, checkpoint: dict[str, Any] | None = None) -> list[Page]:
    return list(adapter.pages(checkpoint or {}))


def records(result: list[Page]) -> list[Record]:
    return [r for page in result for r in page.records]


def errors(result: list[Page]) -> list[tuple[str, str]]:
    return [(e.position, e.code) for page in result for e in page.errors]


def csv_file(rows: Sequence[tuple[str, ...]], header: str = "type,value,labels,category") -> str:
    return "\n".join([header, *(",".join(row) for row in rows)]) + "\n"


def test_a_csv_snapshot_comes_in_pages_of_one_snapshot_the_last_complete(
    upstream: Upstream, http: Http
) -> None:
    pdqs = [random_pdq() for _ in range(4)]
    md5 = random_md5()
    body = csv_file(
        [
            ("pdq", pdqs[0], "A1", "csam"),
            ("pdq", pdqs[1].upper(), "B2;escalated", "se"),
            ("md5", md5, "", ""),
            ("pdq", pdqs[2], "", ""),
            ("pdq", pdqs[3], "", ""),
        ]
    )
    result = pages(feed(upstream, http, body, page_size=2))
    assert [len(p.records) for p in result] == [2, 2, 1]
    assert len({p.snapshot for p in result}) == 1 and result[0].snapshot
    assert [p.snapshot_complete for p in result] == [False, False, True]
    assert [p.checkpoint["offset"] for p in result] == [3, 5, 6]
    assert [p.checkpoint["complete"] for p in result] == [False, False, True]
    first, second, third = records(result)[:3]
    assert first == Record(
        position="line 2",
        op=ADD,
        hashes=(("pdq", pdqs[0]),),
        key=f"pdq:{pdqs[0]}",
        category="csam",
        labels=("A1",),
    )
    # Values are canonicalised, so two spellings of one hash are one key.
    assert second.hashes == (("pdq", pdqs[1]),) and second.key == f"pdq:{pdqs[1]}"
    assert second.labels == ("B2", "escalated") and second.category == "se"
    assert third.category == "" and third.key == f"md5:{md5}"


def test_an_unchanged_file_yields_no_page_and_a_changed_one_a_new_snapshot(
    upstream: Upstream, http: Http
) -> None:
    body = csv_file([("pdq", random_pdq(), "", ""), ("pdq", random_pdq(), "", "")])
    adapter = feed(upstream, http, body)
    [done] = pages(adapter)
    assert pages(adapter, done.checkpoint) == []
    changed = body + f"md5,{random_md5()},,\n"
    adapter = feed(upstream, http, changed)
    [again] = pages(adapter, done.checkpoint)
    assert again.snapshot != done.snapshot
    assert len(again.records) == 3 and again.snapshot_complete


def test_the_same_file_coming_back_later_gets_a_fresh_snapshot_id(
    upstream: Upstream, http: Http
) -> None:
    first = csv_file([("pdq", random_pdq(), "", "")])
    second = csv_file([("pdq", random_pdq(), "", "")])
    [one] = pages(feed(upstream, http, first))
    [two] = pages(feed(upstream, http, second), one.checkpoint)
    [three] = pages(feed(upstream, http, first), two.checkpoint)
    assert len({one.snapshot, two.snapshot, three.snapshot}) == 3


def test_a_run_stopped_part_way_resumes_after_the_last_applied_page(
    upstream: Upstream, http: Http
) -> None:
    rows = [("pdq", random_pdq(), "", "") for _ in range(7)]
    adapter = feed(upstream, http, csv_file(rows), page_size=3)
    clean = pages(adapter)
    # The runner stored the first page's checkpoint, then the worker died.
    resumed = pages(adapter, clean[0].checkpoint)
    assert records(resumed) == records(clean)[3:]
    assert {p.snapshot for p in resumed} == {clean[0].snapshot}
    assert resumed[-1].snapshot_complete
    assert resumed[-1].checkpoint == clean[-1].checkpoint


def test_a_delta_file_adds_and_removes_by_its_op_column(upstream: Upstream, http: Http) -> None:
    kept, gone = random_pdq(), random_pdq()
    body = f"op,type,value\nadd,pdq,{kept}\nremove,pdq,{gone}\nDELETED,pdq,{kept}\n,pdq,{gone}\n"
    result = pages(feed(upstream, http, body, mode="delta"))
    assert [(r.op, r.key) for r in records(result)] == [
        (ADD, f"pdq:{kept}"),
        (REMOVE, f"pdq:{gone}"),
        (REMOVE, f"pdq:{kept}"),
        (ADD, f"pdq:{gone}"),
    ]
    assert all(not p.snapshot and not p.snapshot_complete for p in result)


def test_a_delta_log_that_only_grew_goes_on_after_the_applied_lines(
    upstream: Upstream, http: Http
) -> None:
    a, b, c = random_pdq(), random_pdq(), random_pdq()
    log = f"op,type,value\nadd,pdq,{a}\nremove,pdq,{a}\n"
    [done] = pages(feed(upstream, http, log, mode="delta"))
    grown = log + f"add,pdq,{b}\n"
    [later] = pages(feed(upstream, http, grown, mode="delta"), done.checkpoint)
    assert [(r.position, r.op, r.key) for r in later.records] == [("line 4", ADD, f"pdq:{b}")]
    # A log rewritten (not appended to) is read again from the top.
    rewritten = f"op,type,value\nadd,pdq,{c}\n"
    [again] = pages(feed(upstream, http, rewritten, mode="delta"), later.checkpoint)
    assert [r.key for r in again.records] == [f"pdq:{c}"]
    # A snapshot that grew is a new snapshot: every row again.
    [snap] = pages(feed(upstream, http, f"type,value\npdq,{a}\n"))
    [bigger] = pages(feed(upstream, http, f"type,value\npdq,{a}\npdq,{b}\n"), snap.checkpoint)
    assert len(bigger.records) == 2 and bigger.snapshot != snap.snapshot


def test_tsv_and_json_lines_are_recognised_by_their_first_line(
    upstream: Upstream, http: Http
) -> None:
    pdq, md5 = random_pdq(), random_md5()
    tsv = f"Type\tHash\tLabels\npdq\t{pdq}\tA2\nmd5\t{md5}\t\n"
    assert [r.hashes for r in records(pages(feed(upstream, http, tsv)))] == [
        (("pdq", pdq),),
        (("md5", md5),),
    ]
    jsonl = (
        f'{{"type": "pdq", "value": "{pdq}", "labels": ["A1", "b"], "category": "se"}}\n'
        f'\n{{"TYPE": "md5", "hash": "{md5}", "labels": "x;y"}}\n'
    )
    got = records(pages(feed(upstream, http, jsonl)))
    assert [(r.position, r.hashes, r.labels, r.category) for r in got] == [
        ("line 1", (("pdq", pdq),), ("A1", "b"), "se"),
        ("line 3", (("md5", md5),), ("x", "y"), ""),
    ]


def test_a_fixed_type_reads_a_file_of_bare_values(upstream: Upstream, http: Http) -> None:
    values = [random_md5() for _ in range(3)]
    body = "md5\n" + "\n".join(values) + "\n"
    result = pages(feed(upstream, http, body, type="md5", value_field="md5", format="csv"))
    assert [r.hashes for r in records(result)] == [(("md5", v),) for v in values]


def test_a_headerless_file_takes_its_columns_from_the_config(
    upstream: Upstream, http: Http
) -> None:
    pdq = random_pdq()
    result = pages(feed(upstream, http, f"{pdq},se\n", type="pdq", columns=["value", "category"]))
    assert [(r.hashes, r.category) for r in records(result)] == [((("pdq", pdq),), "se")]


def test_a_wide_iwf_style_row_is_one_record_with_all_its_hashes(
    upstream: Upstream, http: Http
) -> None:
    md5, photodna = random_md5(), secrets.token_hex(144)
    body = f"ID,MD5,PhotoDNA,Category\nimg-1,{md5},{photodna},csam\nimg-2,,,csam\n"
    result = pages(
        feed(
            upstream,
            http,
            body,
            hash_fields={"md5": "MD5", "photodna": "PhotoDNA"},
            id_field="ID",
        )
    )
    [record] = records(result)
    assert record.key == "id:img-1"
    assert record.hashes == (("md5", md5), ("photodna", photodna))
    assert errors(result) == [("line 3", "missing_field")]


def test_a_quoted_decimal_photodna_cell_reaches_the_runner_whole(
    upstream: Upstream, http: Http
) -> None:
    """PhotoDNA's decimal form holds commas: a CSV feed quotes it, and the cell is read as one
    value, the 144 bytes."""
    raw = secrets.token_bytes(144)
    decimal = ",".join(str(byte) for byte in raw)
    body = f'ID,PhotoDNA\nimg-1,"{decimal}"\n'
    result = pages(feed(upstream, http, body, hash_fields={"photodna": "PhotoDNA"}, id_field="ID"))
    [record] = records(result)
    [(signal_type, value)] = record.hashes
    photodna = get_signal_type("photodna")
    assert signal_type == "photodna"
    assert photodna.to_text(photodna.parse(value)) == raw.hex()


def test_broken_rows_are_reported_with_their_line_and_the_rest_proceeds(
    upstream: Upstream, http: Http
) -> None:
    good = [random_pdq() for _ in range(3)]
    body = "\n".join(
        [
            "type,value,labels,category",
            f"pdq,{good[0]},,",
            'pdq,"unterminated,,',  # line 3: broken quoting
            "pdq",  # line 4: no value
            f"nosuch,{good[1]},,",  # line 5: unknown type
            f"pdq,{good[1][:-2]},,",  # line 6: wrong length
            f"md5,{'zz' * 16},,",  # line 7: not hex
            f"pdq,{good[1]},,mystery",  # line 8: unknown category
            f"pdq,{good[1]},,csam,surplus",  # line 9: a field too many
            "# a comment, skipped",
            "",
            f"pdq,{good[1]},,",
            f"pdq,{good[2]},,,",  # an empty trailing field is fine
        ]
    )
    result = pages(feed(upstream, http, body))
    assert errors(result) == [
        ("line 3", "bad_row"),
        ("line 4", "missing_field"),
        ("line 5", "unknown_type"),
        ("line 6", "wrong_length"),
        ("line 7", "bad_characters"),
        ("line 8", "bad_category"),
        ("line 9", "too_many_fields"),
    ]
    assert [r.position for r in records(result)] == ["line 2", "line 12", "line 13"]
    assert all(e.message for p in result for e in p.errors)


def test_bad_json_lines_and_bad_ops_are_reported_per_line(upstream: Upstream, http: Http) -> None:
    pdq = random_pdq()
    body = (
        f'{{"type": "pdq", "value": "{pdq}"}}\n'
        "{not json\n"
        '["a", "list"]\n'
        f'{{"type": "pdq", "value": 12}}\n'
        f'{{"type": "pdq", "value": "{pdq}", "op": "frobnicate"}}\n'
        f'{{"type": "pdq", "value": "{pdq}", "labels": {{"a": 1}}}}\n'
    )
    result = pages(feed(upstream, http, body, mode="delta"))
    assert errors(result) == [
        ("line 2", "bad_json"),
        ("line 3", "bad_json"),
        ("line 4", "bad_field"),
        ("line 5", "bad_op"),
        ("line 6", "bad_field"),
    ]


def test_a_line_that_is_not_utf8_or_far_too_long_is_one_error(
    upstream: Upstream, http: Http
) -> None:
    pdq = random_pdq()
    body = (
        f"type,value\npdq,{pdq}\npdq,caf\xe9\n".encode("latin-1")
        + b"pdq," + b"a" * 20_000 + b"\n"
        + f"pdq,{pdq}\n".encode()
    )  # fmt: skip
    result = pages(feed(upstream, http, body))
    assert errors(result) == [("line 3", "bad_encoding"), ("line 4", "line_too_long")]
    assert [r.position for r in records(result)] == ["line 2", "line 5"]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(os.urandom(4096), id="random bytes"),
        pytest.param(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + os.urandom(64), id="an image"),
        pytest.param("<!doctype html><html><body>Sign in</body></html>", id="an HTML page"),
        pytest.param("name,size\nholiday.jpg,12\n", id="CSV without hashes"),
        pytest.param("hello, this is a letter\nnot a feed\n", id="prose"),
    ],
)
def test_a_file_that_is_no_hash_feed_at_all_is_malformed(
    upstream: Upstream, http: Http, body: bytes | str
) -> None:
    with pytest.raises(SourceError) as raised:
        pages(feed(upstream, http, body))
    assert raised.value.code == "malformed_page"
    assert raised.value.message


def test_json_lines_whose_first_line_is_not_json_are_malformed(
    upstream: Upstream, http: Http
) -> None:
    with pytest.raises(SourceError) as raised:
        pages(feed(upstream, http, "{oops\n", format="jsonl"))
    assert raised.value.code == "malformed_page"
    assert raised.value.position == "line 1"


def test_an_empty_snapshot_is_refused_unless_allowed(upstream: Upstream, http: Http) -> None:
    with pytest.raises(SourceError) as raised:
        pages(feed(upstream, http, "type,value\n"))
    assert raised.value.code == "empty_snapshot"
    [page] = pages(feed(upstream, http, "type,value\n", allow_empty=True))
    assert page.records == [] and page.snapshot_complete


def test_the_token_goes_in_a_bearer_header_and_a_refusal_is_auth_failed(
    upstream: Upstream, http: Http
) -> None:
    pdq = random_pdq()
    adapter = feed(
        upstream, http, f"type,value\npdq,{pdq}\n", token_env="HASHHUB_SOURCE_FEED_TOKEN"
    )
    assert len(records(pages(adapter))) == 1
    assert upstream.requests[-1].headers["authorization"] == "Bearer s3cret"
    upstream.routes["/feed"] = Reply("denied", 401)
    with pytest.raises(SourceError) as raised:
        pages(adapter)
    assert raised.value.code == "auth_failed"
    assert "s3cret" not in raised.value.message


def test_a_missing_token_variable_stops_before_any_request(upstream: Upstream, http: Http) -> None:
    adapter = FeedAdapter(
        config={"url": f"{upstream.url}/feed", "token_env": "HASHHUB_SOURCE_NOT_SET"},
        credentials=Credentials({}),
        http=http,
    )
    with pytest.raises(SourceError) as raised:
        pages(adapter)
    assert raised.value.code == "credentials_missing"
    assert upstream.requests == []


def test_a_server_error_is_retried_then_reported(upstream: Upstream, http: Http) -> None:
    pdq = random_pdq()
    answers = iter([Reply("busy", 503), Reply(f"type,value\npdq,{pdq}\n")])
    upstream.routes["/feed"] = lambda _: next(answers)
    adapter = FeedAdapter(
        config={"url": f"{upstream.url}/feed"}, credentials=Credentials({}), http=http
    )
    assert len(records(pages(adapter))) == 1
    upstream.routes["/feed"] = Reply("down", 500)
    with pytest.raises(SourceError) as raised:
        pages(adapter)
    assert raised.value.code == "http_error"


def test_an_uploaded_file_is_read_from_the_feed_directory(tmp_path: Path, settings: Any) -> None:
    settings.HASHHUB_FEED_DIR = tmp_path
    pdq = random_pdq()
    (tmp_path / "iwf.csv").write_text(f"type,value\npdq,{pdq}\n")
    adapter = FeedAdapter(
        config={"file": "iwf.csv"}, credentials=Credentials({}), http=Http(attempts=1)
    )
    try:
        [page] = pages(adapter)
        assert page.records[0].hashes == (("pdq", pdq),)
        assert pages(adapter, page.checkpoint) == []
        (tmp_path / "iwf.csv").unlink()
        with pytest.raises(SourceError) as raised:
            pages(adapter)
        assert raised.value.code == "file_missing"
    finally:
        adapter.http.close()


@pytest.mark.parametrize(
    "config",
    [
        {"url": "https://x.test/f", "upload": "abc123"},
        {"upload": "../elsewhere"},
        {"url": "https://x.test/f", "file": "f.csv"},
        {"url": "ftp://x.test/f"},
        {"file": "../secret_key"},
        {"file": "/etc/passwd"},
        {"url": "https://x.test/f", "format": "xml"},
        {"url": "https://x.test/f", "mode": "mirror"},
        {"url": "https://x.test/f", "type": "nosuch"},
        {"url": "https://x.test/f", "category": "other"},
        {"url": "https://x.test/f", "page_size": 0},
        {"url": "https://x.test/f", "hash_fields": {"md5": ""}},
        {"url": "https://x.test/f", "encoding": "klingon"},
        # Codecs that are not text encodings (zlib_codec inflated a small body: issue 18).
        {"url": "https://x.test/f", "encoding": "zlib_codec"},
        {"url": "https://x.test/f", "encoding": "base64"},
        {"url": "https://x.test/f", "encoding": "rot13"},
    ],
)
def test_a_config_that_cannot_work_is_refused(
    config: dict[str, Any], settings: Any, tmp_path: Path
) -> None:
    settings.HASHHUB_FEED_DIR = tmp_path
    with pytest.raises(SourceError) as raised:
        FeedAdapter.check_config(config)
    assert raised.value.code == "bad_config"
