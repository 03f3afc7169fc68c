"""Verified sources in matching: entitlements gate them everywhere, tier ``verified``."""

from __future__ import annotations

import secrets

import pytest
from django.test import Client
from django_scopes import scopes_disabled

from hub.audit import Actor
from hub.models import AuditEvent, Organization
from lists import services as list_services
from lists.models import HashList, Source
from lists.sources import services as source_services
from sharing import services
from tests.matching.test_export import replay
from tests.sharing.test_access import api, hits, matchable_live

pytestmark = pytest.mark.django_db

SYSTEM = Actor(system="test")


@pytest.fixture
def source(monkeypatch: pytest.MonkeyPatch) -> Source:
    from tests.lists.test_sources_runner import Scripted

    monkeypatch.setattr(source_services, "adapter_class", lambda kind: Scripted)
    return source_services.source_create(
        name="Hotline Feed", kind="feed", config={}, access="granted", actor=SYSTEM
    )


def source_list(source: Source, category: str = "csam") -> HashList:
    return source_services.source_lists(source)[category]


def add(hash_list: HashList, signal_type: str, value: str) -> None:
    with scopes_disabled():
        list_services.entry_add(
            hash_list=hash_list,
            items=[list_services.EntryInput(signal_type, value, ("A1",))],
            actor=SYSTEM,
        )


def grant(source: Source, org: Organization, granted: bool = True) -> bool:
    return services.entitlement_set(source=source, org=org, granted=granted, actor=SYSTEM)


@pytest.fixture
def api_b(org_b: Organization) -> Client:
    return api(org_b)


def test_a_gated_source_is_invisible_without_a_grant(
    source: Source, org_b: Organization, api_b: Client
) -> None:
    value = secrets.token_hex(32)
    hash_list = source_list(source)
    add(hash_list, "pdq", value)
    assert hits(api_b, value) == []
    assert [i for i in api_b.get("/api/v1/lists").json()["lists"] if i["tier"] == "verified"] == []
    for url in [
        f"/api/v1/lists/{hash_list.public_id}",
        f"/api/v1/lists/{hash_list.public_id}/entries",
    ]:
        response = api_b.get(url)
        assert response.status_code == 404, url
        assert "Hotline" not in response.content.decode()
    live, _ = replay(api_b)
    assert live == set()


def test_a_grant_opens_matching_listing_entries_and_export_and_a_revoke_closes_them(
    source: Source, org_a: Organization, org_b: Organization, api_b: Client
) -> None:
    value = secrets.token_hex(32)
    hash_list = source_list(source)
    add(hash_list, "pdq", value)
    _, cursor = replay(api_b)
    assert grant(source, org_b) is True
    assert grant(source, org_b) is False
    [hit] = hits(api_b, value)
    assert hit["list"] == {
        "id": hash_list.public_id,
        "name": "Hotline Feed CSAM",
        "category": "csam",
        "tier": "verified",
        "contributor": "Hotline Feed",
        "anonymous": False,
    }
    listed = [i for i in api_b.get("/api/v1/lists").json()["lists"] if i["tier"] == "verified"]
    assert sorted((i["name"], i["size"], i["visibility"]) for i in listed) == [
        ("Hotline Feed CSAM", 1, "verified"),
        ("Hotline Feed Sexually exploitative", 0, "verified"),
    ]
    [entry] = api_b.get(f"/api/v1/lists/{hash_list.public_id}/entries").json()["entries"]
    assert entry["value"] == value and entry["labels"] == ["A1"]
    page = api_b.get("/api/v1/export", {"cursor": cursor}).json()
    assert [(i["op"], i["value"], i["list"]["tier"]) for i in page["items"]] == [
        ("add", value, "verified")
    ]
    assert (
        api(org_a)
        .post(
            "/api/v1/match",
            {"hashes": [{"type": "pdq", "value": value}]},
            content_type="application/json",
        )
        .json()["results"][0]["matches"]
        == []
    )  # A was not granted
    grant(source, org_b, granted=False)
    assert hits(api_b, value) == []
    page = api_b.get("/api/v1/export", {"cursor": page["next_cursor"]}).json()
    assert [(i["op"], i["value"]) for i in page["items"]] == [("remove", value)]
    live, _ = replay(api_b)
    assert live == matchable_live(org_b) == set()
    with scopes_disabled():
        actions = list(
            AuditEvent.objects.filter(organization=org_b, action__startswith="source.")
            .order_by("id")
            .values_list("action", flat=True)
        )
    assert actions == ["source.access_granted", "source.access_revoked"]


def test_a_source_open_to_all_reaches_every_approved_org_but_no_unapproved_one(
    source: Source, org_a: Organization, org_b: Organization, api_b: Client
) -> None:
    from hub.services import organization_set_approved

    value = secrets.token_hex(16)
    add(source_list(source, "se"), "md5", value)
    services.source_access_set(source=source, access="all", actor=SYSTEM)
    assert [h["list"]["tier"] for h in hits(api_b, value, "md5")] == ["verified"]
    assert hits(api(org_a), value, "md5")
    organization_set_approved(org=org_b, approved=False, actor=SYSTEM)
    assert hits(api_b, value, "md5") == []
    with pytest.raises(Exception) as refused:
        services.source_access_set(source=source, access="everyone", actor=SYSTEM)
    assert getattr(refused.value, "code", "") == "invalid_access"


def test_corroboration_counts_a_source_as_one_holder(
    source: Source, org_b: Organization, api_b: Client
) -> None:
    from tests.matching.test_match_api import add as add_own
    from tests.matching.test_match_api import own_list

    value = secrets.token_hex(32)
    add(source_list(source), "pdq", value)
    add(source_list(source, "se"), "pdq", value)  # the same source twice: still one
    add_own(own_list(org_b), ("pdq", value))
    grant(source, org_b)
    assert {h["corroboration"] for h in hits(api_b, value)} == {1}
