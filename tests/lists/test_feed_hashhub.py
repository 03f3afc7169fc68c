"""Federation: a HashHub source reading a real peer hub's /api/v1/export.

The peer is this very project, served by pytest-django's ``live_server`` thread: Alice's
organisation holds lists there and gives the source an ``export`` key. Hashes are random.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from django_scopes import scope, scopes_disabled

from hub.audit import Actor
from hub.models import Organization
from lists import services as list_services
from lists.changes import sequence_last
from lists.models import Entry, HashList, ImportRun, Source
from lists.sources import runs
from lists.sources import services as source_services
from lists.sources.adapters.base import ADD, REMOVE, Credentials
from lists.sources.adapters.hashhub import HashHubAdapter
from lists.sources.adapters.http import Http
from lists.sources.errors import SourceError
from tests.conftest import make_key
from tests.lists.feed_fixtures import Reply, Upstream, quick_http, random_pdq, serve_upstream

if TYPE_CHECKING:
    from pytest_django.live_server_helper import LiveServer

SYSTEM = Actor(system="test")


@pytest.fixture
def http() -> Iterator[Http]:
    yield from quick_http()


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    yield from serve_upstream()


def peer_list(org: Organization, category: str = "csam", name: str = "") -> HashList:
    with scope(organization=org.pk):
        if not name:
            return HashList.objects.get(organization=org, category=category, is_default=True)
        return list_services.list_create(
            org=org, name=name, category=category, description="", actor=SYSTEM
        )


def change(hash_list: HashList, op: str, *pairs: tuple[str, str]) -> None:
    items = [list_services.EntryInput(t, v) for t, v in pairs]
    with scope(organization=hash_list.organization_id):
        if op == "add":
            list_services.entry_add(hash_list=hash_list, items=items, actor=SYSTEM)
        else:
            list_services.entry_remove(hash_list=hash_list, items=items, reason="t", actor=SYSTEM)


def peer_source(url: str, **config: Any) -> Source:
    return source_services.source_create(
        name="Peer hub",
        kind="hashhub",
        config={"url": url, "api_key_env": "HASHHUB_SOURCE_PEER_KEY", **config},
        actor=SYSTEM,
    )


def run(source: Source, http: Http, key: str) -> ImportRun:
    queued = runs.run_create(source=source, trigger="test", enqueue=False)
    return runs.run_execute(
        run_id=queued.pk, http=http, credentials=Credentials({"HASHHUB_SOURCE_PEER_KEY": key})
    )


def live(source: Source) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {"csam": set(), "se": set()}
    with scopes_disabled():
        for entry in Entry.objects.filter(
            hash_list__source=source, removed_seq__isnull=True
        ).select_related("hash", "hash_list"):
            found[entry.hash_list.category].add(
                f"{entry.hash.signal_type}:{bytes(entry.hash.value).hex()}"
            )
    return found


@pytest.mark.django_db(transaction=True)
def test_a_source_mirrors_a_peer_hubs_export_through_adds_and_removes(
    live_server: LiveServer, org_a: Organization, http: Http
) -> None:
    csam, second, se = (
        peer_list(org_a),
        peer_list(org_a, name="Second CSAM"),
        peer_list(org_a, "se"),
    )
    a, b, c = random_pdq(), random_pdq(), random_pdq()
    md5 = secrets.token_hex(16)
    change(csam, "add", ("pdq", a), ("pdq", b))
    change(second, "add", ("pdq", b))  # the same hash in two peer lists of one category
    change(se, "add", ("md5", md5))
    _, key = make_key(org_a, ["export"])
    source = peer_source(live_server.url, page_size=2)

    first = run(source, http, key)
    assert first.status == "succeeded", first.error_message
    assert first.pages >= 2
    assert live(source) == {"csam": {f"pdq:{a}", f"pdq:{b}"}, "se": {f"md5:{md5}"}}

    # b leaves one peer list but stays in the other; the se hash goes; c arrives.
    change(csam, "remove", ("pdq", b))
    change(se, "remove", ("md5", md5))
    change(csam, "add", ("pdq", c))
    second_run = run(source, http, key)
    assert second_run.status == "succeeded"
    assert live(source) == {"csam": {f"pdq:{a}", f"pdq:{b}", f"pdq:{c}"}, "se": set()}

    # Once no peer list holds b, neither does the source.
    change(second, "remove", ("pdq", b))
    run(source, http, key)
    assert live(source)["csam"] == {f"pdq:{a}", f"pdq:{c}"}

    before, sequence = live(source), sequence_last()
    idle = run(source, http, key)
    assert (idle.status, idle.pages) == ("succeeded", 0)
    assert live(source) == before and sequence_last() == sequence


@pytest.mark.django_db(transaction=True)
def test_filters_skip_other_categories(
    live_server: LiveServer, org_a: Organization, http: Http
) -> None:
    pdq = random_pdq()
    change(peer_list(org_a), "add", ("pdq", random_pdq()))
    change(peer_list(org_a, "se"), "add", ("pdq", pdq))
    _, key = make_key(org_a, ["export"])
    source = peer_source(live_server.url, categories=["se"], tiers=["own"])
    assert run(source, http, key).status == "succeeded"
    assert live(source) == {"csam": set(), "se": {f"pdq:{pdq}"}}


@pytest.mark.django_db(transaction=True)
def test_a_key_the_peer_refuses_fails_the_run_as_auth_failed(
    live_server: LiveServer, org_a: Organization, http: Http
) -> None:
    _, no_export = make_key(org_a, ["match"])
    source = peer_source(live_server.url)
    for key in ("hh_not_a_real_key", no_export):
        done = run(source, http, key)
        assert (done.status, done.error_code) == ("failed", "auth_failed")
        assert key not in done.error_message


def test_items_become_records_keyed_by_peer_list_and_hash(upstream: Upstream, http: Http) -> None:
    pdq = random_pdq()
    peer = {"id": "L1", "name": "Peer CSAM", "category": "csam", "tier": "own",
            "contributor": "Peer org", "anonymous": False}  # fmt: skip
    items = [
        {"seq": 7, "op": "add", "type": "pdq", "value": pdq.upper(), "list": peer},
        {"seq": 8, "op": "remove", "type": "pdq", "value": pdq, "list": peer},
        {"seq": 9, "op": "rename", "type": "pdq", "value": pdq, "list": peer},
        {"seq": 10, "op": "add", "type": "pdq", "value": "abc", "list": peer},
        "junk",
    ]
    upstream.routes["/api/v1/export"] = lambda r: Reply.json(
        {"items": items if not r.query["cursor"] else [], "next_cursor": "c1", "has_more": False}
    )
    adapter = HashHubAdapter(
        config={"url": upstream.url + "/", "api_key_env": "HASHHUB_SOURCE_K"},
        credentials=Credentials({"HASHHUB_SOURCE_K": "peer-key"}),
        http=http,
    )
    [page] = adapter.pages({})
    assert [(r.op, r.key, r.hashes, r.category) for r in page.records] == [
        (ADD, f"L1:pdq:{pdq}", (("pdq", pdq),), "csam"),
        (REMOVE, f"L1:pdq:{pdq}", (), "csam"),
    ]
    assert [(e.position, e.code) for e in page.errors] == [
        ("seq 9", "bad_record"),
        ("seq 10", "wrong_length"),
        ("export after cursor (start), item 4", "bad_record"),
    ]
    assert page.checkpoint == {"cursor": "c1"}
    request = upstream.requests[-1]
    assert request.headers["authorization"] == "Bearer peer-key"
    assert request.query == {"cursor": "", "limit": "1000"}
    assert list(adapter.pages(page.checkpoint)) == []  # nothing new: no page


@pytest.mark.parametrize(
    "body",
    [
        "<html>proxy error</html>",
        json.dumps({"items": "none", "next_cursor": "x", "has_more": False}),
        json.dumps({"items": [], "next_cursor": "", "has_more": True}),
    ],
)
def test_an_answer_that_is_not_an_export_page_is_malformed(
    upstream: Upstream, http: Http, body: str
) -> None:
    upstream.routes["/api/v1/export"] = Reply(body)
    adapter = HashHubAdapter(
        config={"url": upstream.url, "api_key_env": "HASHHUB_SOURCE_K"},
        credentials=Credentials({"HASHHUB_SOURCE_K": "k"}),
        http=http,
    )
    with pytest.raises(SourceError) as raised:
        list(adapter.pages({}))
    assert raised.value.code == "malformed_page"


@pytest.mark.parametrize(
    "config",
    [
        {"api_key_env": "HASHHUB_SOURCE_K"},
        {"url": "ftp://peer.test", "api_key_env": "HASHHUB_SOURCE_K"},
        {"url": "https://peer.test", "api_key_env": "HASHHUB_SOURCE_K", "categories": ["other"]},
        {"url": "https://peer.test", "api_key_env": "HASHHUB_SOURCE_K", "tiers": []},
        {"url": "https://peer.test", "api_key_env": "HASHHUB_SOURCE_K", "page_size": 20_000},
    ],
)
def test_a_config_that_cannot_work_is_refused(config: dict[str, Any]) -> None:
    with pytest.raises(SourceError) as raised:
        HashHubAdapter.check_config(config)
    assert raised.value.code == "bad_config"


def test_the_peers_verified_lists_are_left_out_unless_asked_for(
    upstream: Upstream, http: Http
) -> None:
    own, verified = random_pdq(), random_pdq()
    lists = {
        tier: {"id": f"L-{tier}", "name": tier, "category": "csam", "tier": tier,
               "contributor": None, "anonymous": True}
        for tier in ("own", "verified")
    }  # fmt: skip
    items = [
        {"seq": 1, "op": "add", "type": "pdq", "value": own, "list": lists["own"]},
        {"seq": 2, "op": "add", "type": "pdq", "value": verified, "list": lists["verified"]},
    ]
    upstream.routes["/api/v1/export"] = Reply.json(
        {"items": items, "next_cursor": "c1", "has_more": False}
    )

    def keys(**config: Any) -> list[str]:
        adapter = HashHubAdapter(
            config={"url": upstream.url, "api_key_env": "HASHHUB_SOURCE_K", **config},
            credentials=Credentials({"HASHHUB_SOURCE_K": "k"}),
            http=http,
        )
        return [r.key for page in adapter.pages({}) for r in page.records]

    assert keys() == [f"L-own:pdq:{own}"]
    assert keys(tiers=["own", "verified"]) == [f"L-own:pdq:{own}", f"L-verified:pdq:{verified}"]
