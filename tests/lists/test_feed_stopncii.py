"""The StopNCII adapter against a real HTTP server speaking the FetchHashes JSON format."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from lists.sources.adapters import adapter_class
from lists.sources.adapters.base import ADD, REMOVE, Credentials, Page, Record
from lists.sources.adapters.http import Http
from lists.sources.adapters.stopncii import StopNCIIAdapter
from lists.sources.errors import SourceError
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

KEYS = {"HASHHUB_SOURCE_NCII_SUBSCRIPTION": "sub-key", "HASHHUB_SOURCE_NCII_FUNCTION": "fn-key"}


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    yield from serve_upstream()


@pytest.fixture
def http() -> Iterator[Http]:
    yield from quick_http()


@pytest.fixture
def stopncii(upstream: Upstream) -> FakeStopNCII:
    fake = FakeStopNCII("sub-key", "fn-key")
    upstream.routes[FakeStopNCII.PATH] = fake
    return fake


def adapter(upstream: Upstream, http: Http, **config: Any) -> StopNCIIAdapter:
    made = adapter_class("stopncii")(
        config={
            "url": f"{upstream.url}/v1",
            "subscription_key_env": "HASHHUB_SOURCE_NCII_SUBSCRIPTION",
            "function_key_env": "HASHHUB_SOURCE_NCII_FUNCTION",
            **config,
        },
        credentials=Credentials(KEYS),
        http=http,
    )
    assert isinstance(made, StopNCIIAdapter)
    return made


def records(result: list[Page]) -> list[Record]:
    return [r for page in result for r in page.records]


def changes(result: list[Page]) -> list[tuple[str, str]]:
    return [(r.op, r.key) for r in records(result)]


def test_pages_follow_the_page_token_and_withdrawals_remove(
    upstream: Upstream, http: Http, stopncii: FakeStopNCII
) -> None:
    pdqs = [random_pdq() for _ in range(4)]
    md5 = random_md5()
    stopncii.records = [
        stopncii_record(pdqs[0], timestamp=100),
        stopncii_record(pdqs[1].upper(), status="Active", timestamp=101),
        stopncii_record(md5, signal_type="VideoMD5", timestamp=102),
        stopncii_record(pdqs[2], status="Withdrawn", timestamp=103),
        stopncii_record(pdqs[3], status="Deleted", timestamp=104),
    ]
    result = list(adapter(upstream, http, page_size=2).pages({}))
    assert [len(p.records) for p in result] == [2, 2, 1]
    assert [(r.op, r.key, r.hashes, r.category) for r in records(result)] == [
        (ADD, f"pdq:{pdqs[0]}", (("pdq", pdqs[0]),), "se"),
        (ADD, f"pdq:{pdqs[1]}", (("pdq", pdqs[1]),), "se"),
        (ADD, f"md5:{md5}", (("md5", md5),), "se"),
        (REMOVE, f"pdq:{pdqs[2]}", (), "se"),
        (REMOVE, f"pdq:{pdqs[3]}", (), "se"),
    ]
    # The timestamp holds while a window is paged; the last page moves it on, without a token.
    assert [p.checkpoint["updated_after"] for p in result] == [10, 10, 105]
    assert result[0].checkpoint["page_token"] and result[-1].checkpoint["page_token"] == ""
    first, second = upstream.requests[:2]
    assert first.query == {"startTimestamp": "10", "pageSize": "2"}
    assert second.query["nextPageToken"] == result[0].checkpoint["page_token"]
    assert first.headers["ocp-apim-subscription-key"] == "sub-key"
    assert first.headers["x-functions-key"] == "fn-key"


def test_the_next_run_starts_from_the_stored_timestamp(
    upstream: Upstream, http: Http, stopncii: FakeStopNCII
) -> None:
    old, new = random_pdq(), random_pdq()
    stopncii.records = [stopncii_record(old, timestamp=100)]
    [done] = adapter(upstream, http).pages({})
    stopncii.records.append(stopncii_record(new, timestamp=200))
    stopncii.records.append(stopncii_record(old, status="Withdrawn", timestamp=201))
    [later] = adapter(upstream, http).pages(done.checkpoint)
    assert upstream.requests[-1].query["startTimestamp"] == "101"
    assert [(r.op, r.key) for r in later.records] == [(ADD, f"pdq:{new}"), (REMOVE, f"pdq:{old}")]
    assert later.checkpoint == {"updated_after": 202, "page_token": ""}


def test_a_run_resumes_with_its_page_token_or_rereads_the_window_when_it_expired(
    upstream: Upstream, http: Http, stopncii: FakeStopNCII
) -> None:
    stopncii.records = [stopncii_record(random_pdq(), timestamp=100 + i) for i in range(5)]
    clean = list(adapter(upstream, http, page_size=2).pages({}))
    resumed = list(adapter(upstream, http, page_size=2).pages(clean[0].checkpoint))
    assert changes(resumed) == changes(clean)[2:]
    stopncii.expire_tokens = True
    reread = list(adapter(upstream, http, page_size=10).pages(clean[0].checkpoint))
    assert changes(reread) == changes(clean)
    assert reread[-1].checkpoint == clean[-1].checkpoint


def test_the_reference_clients_sample_answers_are_read(upstream: Upstream, http: Http) -> None:
    """The FetchHashes shapes the threatexchange client's own tests use, odd corners included."""
    token = "W3siY29tcG9zaXRlVG9rZW4iOnsidG9rZW4iOiIrUklEOn4xMnRWQUo4SzU2Y0NB"
    first = {
        "count": 2,
        "nextSetTimestamp": 1625175071,
        "nextPageToken": token,
        "hasMoreRecords": True,
        "hashRecords": [
            {
                "lastModtimestamp": 1625167804,
                "hashValue": "2afc4a5c09628a7961c14d436493bba66b89b831453baa1d556ba385554daa82",
                "hashStatus": "Received",
                "caseNumbers": {"27664732-76e1-4a17-8099-455798e67022": "Received"},
                "signalType": "ImagePDQ",
            },
            {
                "lastModtimestamp": 1625167844,
                "hashValue": "empty-list-case-numbers",
                "hashStatus": "Received",
                "caseNumbers": [],
                "signalType": "ImagePDQ",
            },
        ],
    }
    last = {
        "count": 3,
        "nextSetTimestamp": 1625167824,
        "nextPageToken": None,
        "hasMoreRecords": False,
        "hashRecords": [
            {
                "lastModtimestamp": 1625175071,
                "hashValue": "9def0b7dafa86a1c90f2abd78e79ceb25ec3d1a4b3d4bc7a4354baf7717ea038",
                "hashStatus": "Active",
                "caseNumbers": {"cc592711-7068-442f-b5d2-24d50d389751": "Active"},
                "signalType": "ImagePDQ",
                "hashRegions": ["UK"],
                "CSPFeedbacks": [
                    {"source": "Facebook", "feedbackValue": "Blocked", "tags": ["Nude"]}
                ],
            },
            {
                "lastModtimestamp": 1625175072,
                "hashValue": "https://example.test/page",
                "hashStatus": "Received",
                "caseNumbers": {},
                "signalType": "URL",
            },
            {
                "lastModtimestamp": 1625175073,
                "hashValue": "9def0b7dafa86a1c90f2abd78e79ceb25ec3d1a4b3d4bc7a4354baf7717ea039",
                "hashStatus": "Unknown",
                "caseNumbers": {},
                "signalType": "ImagePDQ",
            },
        ],
    }
    upstream.routes[FakeStopNCII.PATH] = lambda r: Reply.json(
        last if r.query.get("nextPageToken") == token else first
    )
    result = list(adapter(upstream, http).pages({}))
    assert [r.key for r in records(result)] == [
        "pdq:2afc4a5c09628a7961c14d436493bba66b89b831453baa1d556ba385554daa82",
        "pdq:9def0b7dafa86a1c90f2abd78e79ceb25ec3d1a4b3d4bc7a4354baf7717ea038",
    ]
    assert [(e.position, e.code) for p in result for e in p.errors] == [
        ("FetchHashes page 1, record 2", "bad_characters"),
        ("FetchHashes page 2, record 2", "unsupported_type"),
        ("FetchHashes page 2, record 3", "unknown_status"),
    ]
    assert result[-1].checkpoint == {"updated_after": 1625167824, "page_token": ""}


def test_a_withdrawn_hash_of_a_type_this_hub_does_not_hold_is_skipped_quietly(
    upstream: Upstream, http: Http, stopncii: FakeStopNCII
) -> None:
    stopncii.records = [stopncii_record("abc", status="Withdrawn", signal_type="VideoTMK")]
    [page] = adapter(upstream, http).pages({})
    assert page.records == [] and page.errors == []


def test_wrong_keys_fail_the_run_as_auth_failed(
    upstream: Upstream, http: Http, stopncii: FakeStopNCII
) -> None:
    stopncii.function_key = "rotated"
    with pytest.raises(SourceError) as raised:
        list(adapter(upstream, http).pages({}))
    assert raised.value.code == "auth_failed"
    assert "fn-key" not in raised.value.message and "sub-key" not in raised.value.message


@pytest.mark.parametrize(
    "body",
    [
        "<html>maintenance</html>",
        json.dumps([1, 2]),
        json.dumps({"count": 0, "hasMoreRecords": False}),
        json.dumps({"hashRecords": [], "hasMoreRecords": "no"}),
        json.dumps({"hashRecords": [], "hasMoreRecords": True, "nextPageToken": None}),
    ],
)
def test_an_answer_that_is_not_a_fetchhashes_page_is_malformed(
    upstream: Upstream, http: Http, body: str
) -> None:
    upstream.routes[FakeStopNCII.PATH] = Reply(body)
    with pytest.raises(SourceError) as raised:
        list(adapter(upstream, http).pages({}))
    assert raised.value.code == "malformed_page"


@pytest.mark.parametrize(
    "config",
    [
        {"subscription_key_env": "HASHHUB_SOURCE_X", "url": "file:///etc"},
        {"subscription_key_env": "HASHHUB_SOURCE_X", "category": "other"},
        {"subscription_key_env": "HASHHUB_SOURCE_X", "page_size": -1},
        {"subscription_key_env": "HASHHUB_SOURCE_X", "page_size": "800"},
    ],
)
def test_a_config_that_cannot_work_is_refused(config: dict[str, Any]) -> None:
    with pytest.raises(SourceError) as raised:
        StopNCIIAdapter.check_config(config)
    assert raised.value.code == "bad_config"


def test_the_category_defaults_to_se_and_the_url_to_stopncii() -> None:
    config = StopNCIIAdapter.check_config({"subscription_key_env": "HASHHUB_SOURCE_X"})
    assert config["category"] == "se"
    assert config["url"] == "https://api.stopncii.org/v1"
