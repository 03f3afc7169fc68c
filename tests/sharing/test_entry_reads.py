"""Reading a list's entries: the ``lists:read`` scope, and an audit line for others' lists.

``GET /api/v1/lists/{id}/entries`` hands out every hash of a list. A ``match``-only key must not
read them, and reading another organisation's (community) or a source's (verified) list is a
sensitive read, audited like the export: in the reader's log, with the list's public id and
never its owner.
"""

from __future__ import annotations

import json
import secrets

import pytest
from django.test import Client
from django_scopes import scope, scopes_disabled

from hub.models import AuditEvent, Organization
from lists import services as list_services
from lists.models import HashList, Source
from tests.sharing.test_access import SYSTEM, api, new_list, share, subscribe
from tests.sharing.test_verified import add as add_to_source
from tests.sharing.test_verified import grant, source, source_list

pytestmark = pytest.mark.django_db

__all__ = ["source"]  # a fixture of test_verified, used here by name

READ = "list.entries_read"


def _entries(client: Client, hash_list: HashList) -> dict[str, object]:
    response = client.get(f"/api/v1/lists/{hash_list.public_id}/entries")
    assert response.status_code == 200, response.content
    return dict(response.json())


def _reads() -> list[AuditEvent]:
    with scopes_disabled():
        return list(AuditEvent.objects.filter(action=READ).select_related("organization"))


def _add(hash_list: HashList, *values: str) -> None:
    with scope(organization=hash_list.organization_id):
        list_services.entry_add(
            hash_list=hash_list,
            items=[list_services.EntryInput("md5", value) for value in values],
            actor=SYSTEM,
        )


def test_a_match_only_key_cannot_read_entries_and_gets_the_scope_403(
    org_a: Organization,
) -> None:
    own = new_list(org_a, "Own")
    _add(own, secrets.token_hex(16))
    refused = api(org_a, ["match"]).get(f"/api/v1/lists/{own.public_id}/entries")
    assert refused.status_code == 403
    assert refused.json() == {
        "error": {
            "code": "permission_denied",
            "message": "This API key lacks the scope 'lists:read'.",
            "details": None,
        }
    }
    # Every other scope together does not stand in for it either.
    others = api(org_a, ["match", "lists:write", "lists:admin", "export"])
    assert others.get(f"/api/v1/lists/{own.public_id}/entries").status_code == 403
    assert len(_entries(api(org_a, ["lists:read"]), own)["entries"]) == 1  # type: ignore[arg-type]


def test_reading_an_own_list_is_not_audited(org_a: Organization) -> None:
    own = new_list(org_a, "Own")
    _add(own, secrets.token_hex(16))
    _entries(api(org_a, ["lists:read"]), own)
    assert _reads() == []


@pytest.mark.parametrize("visibility", ["open", "anonymous"])
def test_reading_a_community_list_is_audited_in_the_readers_log_without_its_owner(
    org_a: Organization, org_b: Organization, visibility: str
) -> None:
    shared = new_list(org_a, "Shared by A")
    _add(shared, secrets.token_hex(16), secrets.token_hex(16))
    share(shared, visibility)
    subscribe(org_b, shared)
    reader = api(org_b, ["lists:read"])
    body = _entries(reader, shared)
    [event] = _reads()
    assert event.organization == org_b
    assert event.actor_type == "api_key"
    assert (event.target_type, event.target_id) == ("list", shared.public_id)
    assert event.metadata == {
        "tier": "community",
        "cursor": "",
        "entries": len(body["entries"]),  # type: ignore[arg-type]
        "next_cursor": body["next_cursor"],
    }
    # Nothing in the line names, or points at, the list's owner.
    written = json.dumps([event.actor_label, event.target_id, event.metadata])
    for owner_mark in (org_a.name, org_a.slug, f'"{org_a.pk}"'):
        assert owner_mark not in written
    with scope(organization=org_a.pk):
        assert not AuditEvent.objects.filter(action=READ).exists()  # not in the owner's log


def test_reading_a_verified_sources_list_is_audited(source: Source, org_b: Organization) -> None:
    hash_list = source_list(source)
    add_to_source(hash_list, "md5", secrets.token_hex(16))
    grant(source, org_b)
    _entries(api(org_b, ["lists:read"]), hash_list)
    [event] = _reads()
    assert event.organization == org_b
    assert (event.target_id, event.metadata["tier"]) == (hash_list.public_id, "verified")


def test_each_page_read_is_its_own_audit_line_and_refusals_write_none(
    org_a: Organization, org_b: Organization
) -> None:
    shared = new_list(org_a, "Paged")
    _add(shared, *(secrets.token_hex(16) for _ in range(3)))
    share(shared, "open")
    subscribe(org_b, shared)
    reader = api(org_b, ["lists:read"])
    path = f"/api/v1/lists/{shared.public_id}/entries"
    first = reader.get(path, {"limit": 2}).json()
    reader.get(path, {"limit": 2, "cursor": first["next_cursor"]})
    assert [e.metadata["cursor"] for e in sorted(_reads(), key=lambda e: e.pk)] == [
        "",
        first["next_cursor"],
    ]
    private = new_list(org_a, "Private")
    assert reader.get(f"/api/v1/lists/{private.public_id}/entries").status_code == 404
    assert api(org_b, ["match"]).get(path).status_code == 403
    assert len(_reads()) == 2
