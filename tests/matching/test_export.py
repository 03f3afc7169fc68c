"""GET /api/v1/export: the delta feed replays to exactly what the organisation matches against."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from typing import Any

import pytest
from django.test import Client
from django_scopes import scope, scopes_disabled

from hub.models import AuditEvent, Organization
from lists import services as list_services
from lists.models import Entry
from tests.matching.test_match_api import SYSTEM, add, own_list, random_pdq, remove

pytestmark = pytest.mark.django_db


def replay(
    client: Client,
    cursor: str = "",
    limit: int = 3,
    start: Iterable[tuple[str, str, str]] = (),
) -> tuple[set[tuple[str, str, str]], str]:
    """Apply every page from ``cursor`` on to a set of (list id, type, value) (``start``: what was
    replayed up to ``cursor``); returns the set and the last cursor."""
    live: set[tuple[str, str, str]] = set(start)
    last_seq = 0
    while True:
        response = client.get("/api/v1/export", {"cursor": cursor, "limit": str(limit)})
        assert response.status_code == 200, response.content
        page = response.json()
        for item in page["items"]:
            assert item["seq"] >= last_seq
            last_seq = item["seq"]
            key = (item["list"]["id"], item["type"], item["value"])
            if item["op"] == "add":
                live.add(key)
            else:
                live.discard(key)
        cursor = page["next_cursor"]
        if not page["has_more"]:
            return live, cursor


def live_entries(org: Organization) -> set[tuple[str, str, str]]:
    with scope(organization=org.pk):
        return {
            (e.hash_list.public_id, e.hash.signal_type, bytes(e.hash.value).hex())
            for e in Entry.objects.filter(
                hash_list__organization=org,
                hash_list__deleted_at__isnull=True,
                removed_seq__isnull=True,
            ).select_related("hash", "hash_list")
        }


def test_the_feed_replays_to_the_live_entries_of_the_callers_lists(
    api_a: Client, org_a: Organization, org_b: Organization
) -> None:
    csam, se = own_list(org_a, "csam"), own_list(org_a, "se")
    pdqs = [random_pdq() for _ in range(6)]
    add(csam, *[("pdq", p) for p in pdqs[:4]], ("md5", "ab" * 16))
    add(se, ("pdq", pdqs[0]), ("phash", "12" * 8))
    remove(csam, ("pdq", pdqs[1]), ("md5", "ab" * 16))
    add(csam, ("md5", "ab" * 16))  # re-added after removal
    with scope(organization=org_a.pk):
        extra = list_services.list_create(
            org=org_a, name="Gone soon", category="se", description="", actor=SYSTEM
        )
    add(extra, ("pdq", pdqs[5]))
    with scope(organization=org_a.pk):
        list_services.list_delete(hash_list=extra, reason="", actor=SYSTEM)
    add(own_list(org_b), ("pdq", pdqs[4]))  # another organisation's: never in A's feed

    live, _ = replay(api_a)
    assert live == live_entries(org_a)
    assert len(live) == 6
    assert not any(value == pdqs[4] for _, _, value in live)


def test_a_cursor_resumes_and_an_old_cursor_still_works(api_a: Client, org_a: Organization) -> None:
    csam = own_list(org_a)
    first = [random_pdq() for _ in range(4)]
    add(csam, *[("pdq", p) for p in first])
    _live, cursor = replay(api_a)
    # Nothing new: an empty page with the same cursor.
    page = api_a.get("/api/v1/export", {"cursor": cursor}).json()
    assert page["items"] == [] and page["next_cursor"] == cursor and page["has_more"] is False

    later = random_pdq()
    add(csam, ("pdq", later))
    remove(csam, ("pdq", first[0]))
    page = api_a.get("/api/v1/export", {"cursor": cursor}).json()
    assert [(i["op"], i["value"]) for i in page["items"]] == [("add", later), ("remove", first[0])]
    # A stale cursor (after the very first item) still works: that item plus the rest of the
    # feed from there replays to the same live set.
    first_page = api_a.get("/api/v1/export", {"limit": 1}).json()
    [first_item] = first_page["items"]
    rest, _ = replay(api_a, first_page["next_cursor"])
    head = (first_item["list"]["id"], first_item["type"], first_item["value"])
    removed_later = (csam.public_id, "pdq", first[0])
    assert head == removed_later
    assert rest == live_entries(org_a)


def test_items_carry_the_list_object(api_a: Client, org_a: Organization) -> None:
    csam = own_list(org_a)
    add(csam, ("md5", "cd" * 16))
    [item] = api_a.get("/api/v1/export").json()["items"]
    assert item["op"] == "add" and item["type"] == "md5" and item["value"] == "cd" * 16
    assert item["list"] == {
        "id": csam.public_id,
        "name": csam.name,
        "category": "csam",
        "tier": "own",
        "contributor": org_a.name,
        "anonymous": False,
    }


@pytest.mark.parametrize(
    ("params", "code"),
    [({"cursor": "garbage!"}, "bad_cursor"), ({"limit": "ten"}, "bad_limit")],
)
def test_bad_parameters_are_a_400(api_a: Client, params: dict[str, Any], code: str) -> None:
    response = api_a.get("/api/v1/export", params)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code


def test_every_export_call_is_audited(api_a: Client, org_a: Organization) -> None:
    add(own_list(org_a), ("md5", secrets.token_hex(16)))
    api_a.get("/api/v1/export")
    with scopes_disabled():
        event = AuditEvent.objects.get(action="export.read")
    assert event.organization_id == org_a.pk
    assert event.metadata["items"] == 1
