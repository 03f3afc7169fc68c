from __future__ import annotations

import secrets
from typing import Any

import pytest
from django.test import Client
from django_scopes import scope

from hub.models import ApiKey, Organization
from lists.models import HashList
from tests.conftest import make_key
from tests.sharing.test_access import BAD_CURSORS

pytestmark = pytest.mark.django_db


def _csam(org: Organization) -> HashList:
    with scope(organization=org.pk):
        return HashList.objects.get(organization=org, category="csam", is_default=True)


def _post(client: Client, path: str, body: object) -> Any:
    return client.post(path, body, content_type="application/json")


def test_hashtypes_lists_every_signal_type(api_a: Client) -> None:
    types = {t["type"]: t for t in api_a.get("/api/v1/hashtypes").json()["types"]}
    assert set(types) == {"md5", "sha1", "sha256", "pdq", "phash", "photodna"}
    assert types["pdq"] == {
        "type": "pdq",
        "kind": "perceptual",
        "bits": 256,
        "default_max_distance": 31,
        "max_distance": 31,
    }
    assert types["photodna"]["kind"] == "opaque"


def test_lists_shows_the_callers_own_lists_with_sizes(
    api_a: Client, org_a: Organization, org_b: Organization
) -> None:
    body = api_a.get("/api/v1/lists").json()
    names = {
        (item["name"], item["category"], item["tier"], item["contributor"])
        for item in body["lists"]
    }
    assert names == {("CSAM", "csam", "own", "Org A"), ("SE", "se", "own", "Org A")}
    assert all(item["size"] == 0 and item["visibility"] == "private" for item in body["lists"])


def test_add_list_page_and_remove_through_the_api(api_a: Client, org_a: Organization) -> None:
    csam = _csam(org_a)
    values = [secrets.token_hex(32) for _ in range(3)]
    entries = [{"type": "pdq", "value": v, "labels": ["A1"]} for v in values]
    added = _post(
        api_a,
        f"/api/v1/lists/{csam.public_id}/entries",
        {"entries": [*entries, {"type": "md5", "value": "zz"}, "junk"]},
    )
    assert added.status_code == 200
    assert added.json()["added"] == 3
    assert added.json()["already_present"] == 0
    assert [(e["index"], e["code"]) for e in added.json()["errors"]] == [
        (3, "bad_characters"),
        (4, "invalid_item"),
    ]
    page1 = api_a.get(f"/api/v1/lists/{csam.public_id}/entries?limit=2").json()
    assert len(page1["entries"]) == 2 and page1["next_cursor"]
    page2 = api_a.get(
        f"/api/v1/lists/{csam.public_id}/entries?limit=2&cursor={page1['next_cursor']}"
    ).json()
    assert page2["next_cursor"] is None
    seen = [e["value"] for e in page1["entries"] + page2["entries"]]
    assert sorted(seen) == sorted(values)
    assert page1["entries"][0]["labels"] == ["A1"]
    by_prefix = api_a.get(f"/api/v1/lists/{csam.public_id}/entries?prefix={values[0][:5]}").json()
    assert values[0] in [e["value"] for e in by_prefix["entries"]]
    removed = _post(
        api_a,
        f"/api/v1/lists/{csam.public_id}/entries/remove",
        {"entries": [{"type": "pdq", "value": values[0]}], "reason": "fp"},
    )
    assert removed.json() == {"removed": 1, "not_present": 0, "errors": []}
    detail = api_a.get(f"/api/v1/lists/{csam.public_id}").json()
    assert detail["size"] == 2 and detail["size_by_type"] == {"pdq": 2}


def test_create_and_rename_a_list(api_a: Client) -> None:
    created = _post(api_a, "/api/v1/lists", {"name": "Escalations", "category": "se"})
    assert created.status_code == 201
    list_id = created.json()["id"]
    renamed = api_a.patch(
        f"/api/v1/lists/{list_id}", {"name": "Escalated"}, content_type="application/json"
    )
    assert renamed.json()["name"] == "Escalated"
    clash = _post(api_a, "/api/v1/lists", {"name": "escalated", "category": "se"})
    assert clash.status_code == 400 and clash.json()["error"]["code"] == "name_taken"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, "invalid_body"),
        ({"entries": "pdq:abc"}, "invalid_body"),
        ([1, 2], "invalid_body"),
        ({"entries": [{"type": "md5", "value": "00"}] * 10_001}, "too_many_items"),
    ],
)
def test_malformed_entry_bodies_get_400_with_a_code(
    api_a: Client, org_a: Organization, body: object, code: str
) -> None:
    response = _post(api_a, f"/api/v1/lists/{_csam(org_a).public_id}/entries", body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code


def test_bad_cursor_prefix_and_limit_get_400(api_a: Client, org_a: Organization) -> None:
    base = f"/api/v1/lists/{_csam(org_a).public_id}/entries"
    assert api_a.get(base + "?cursor=garbage").json()["error"]["code"] == "bad_cursor"
    for cursor in BAD_CURSORS:
        response = api_a.get(base, {"cursor": cursor})
        assert (response.status_code, response.json()["error"]["code"]) == (400, "bad_cursor")
    assert api_a.get(base + "?prefix=xyz").json()["error"]["code"] == "bad_prefix"
    assert api_a.get(base + "?limit=many").json()["error"]["code"] == "bad_limit"


def test_writing_needs_the_lists_write_scope(org_a: Organization) -> None:
    _key, secret = make_key(org_a, [ApiKey.Scope.MATCH])
    client = Client(headers={"Authorization": f"Bearer {secret}"})
    path = f"/api/v1/lists/{_csam(org_a).public_id}/entries"
    assert client.get(path).status_code == 403  # reading needs lists:read (issue 17)
    response = _post(client, path, {"entries": []})
    assert response.status_code == 403
    assert "lists:write" in response.json()["error"]["message"]


def test_another_orgs_list_is_a_404_on_every_endpoint(api_a: Client, org_b: Organization) -> None:
    theirs = _csam(org_b).public_id
    for response in (
        api_a.get(f"/api/v1/lists/{theirs}"),
        api_a.get(f"/api/v1/lists/{theirs}/entries"),
        _post(api_a, f"/api/v1/lists/{theirs}/entries", {"entries": []}),
        _post(api_a, f"/api/v1/lists/{theirs}/entries/remove", {"entries": []}),
        api_a.patch(
            f"/api/v1/lists/{theirs}", {"name": "mine now"}, content_type="application/json"
        ),
    ):
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
