"""POST /api/v1/match: exact and fuzzy hits, thresholds, per-item errors, isolation, allow list."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django_scopes import scope, scopes_disabled

from hub.audit import Actor
from hub.models import AuditEvent, Organization
from lists import services as list_services
from lists.models import HashList
from matching.models import AllowedHash, Detection
from tests.conftest import make_key

pytestmark = pytest.mark.django_db

SYSTEM = Actor(system="test")


def random_pdq() -> str:
    return secrets.token_hex(32)


def flip(hex_value: str, bits: int, *, start: int = 0) -> str:
    """``hex_value`` with ``bits`` bits flipped (bits start, start + 7, ... so they spread)."""
    number = int(hex_value, 16)
    width = len(hex_value) * 4
    for i in range(bits):
        number ^= 1 << ((start + i * 7) % width)
    return f"{number:0{len(hex_value)}x}"


def own_list(org: Organization, category: str = "csam") -> HashList:
    with scope(organization=org.pk):
        return HashList.objects.get(organization=org, category=category, is_default=True)


def add(hash_list: HashList, *pairs: tuple[str, str]) -> None:
    with scope(organization=hash_list.organization_id):
        result = list_services.entry_add(
            hash_list=hash_list,
            items=[list_services.EntryInput(t, v) for t, v in pairs],
            actor=SYSTEM,
        )
    assert not result.errors


def remove(hash_list: HashList, *pairs: tuple[str, str]) -> None:
    with scope(organization=hash_list.organization_id):
        list_services.entry_remove(
            hash_list=hash_list,
            items=[list_services.EntryInput(t, v) for t, v in pairs],
            reason="test",
            actor=SYSTEM,
        )


def match(client: Client, hashes: list[Any], **extra: Any) -> Any:
    return client.post(
        "/api/v1/match", {"hashes": hashes, **extra}, content_type="application/json"
    )


def test_an_exact_hash_in_an_own_list_matches_with_the_list_described(
    api_a: Client, org_a: Organization
) -> None:
    md5 = secrets.token_hex(16)
    add(own_list(org_a), ("md5", md5))
    response = match(api_a, [{"type": "md5", "value": md5.upper()}])
    assert response.status_code == 200
    [result] = response.json()["results"]
    assert result["value"] == md5
    assert result["error"] is None
    [hit] = result["matches"]
    hash_list = own_list(org_a)
    assert hit == {
        "list": {
            "id": hash_list.public_id,
            "name": hash_list.name,
            "category": "csam",
            "tier": "own",
            "contributor": org_a.name,
            "anonymous": False,
        },
        "distance": 0,
        "matched_value": md5,
        "corroboration": 0,
        "disputed": False,
        # The entry's provenance (tests/matching/test_provenance.py has the rules).
        "labels": [],
        "added": hit["added"],
        "record_id": None,
        "verification": None,
        # The match policy's recommendation (tests/sharing/test_policy.py), and the hub-wide
        # brake on a sudden jump in a hash's match rate (tests/matching/test_holds.py).
        "action": "review",
        "held": False,
    }


@pytest.mark.parametrize("signal_type", ["md5", "sha1", "sha256", "photodna"])
def test_each_exact_type_matches_only_the_same_value(
    api_a: Client, org_a: Organization, signal_type: str
) -> None:
    size = {"md5": 16, "sha1": 20, "sha256": 32, "photodna": 144}[signal_type]
    stored = secrets.token_hex(size)
    add(own_list(org_a), (signal_type, stored))
    nearby = flip(stored, 1)
    results = match(
        api_a, [{"type": signal_type, "value": stored}, {"type": signal_type, "value": nearby}]
    ).json()["results"]
    assert [len(r["matches"]) for r in results] == [1, 0]


def test_pdq_matches_within_31_bits_and_not_beyond(api_a: Client, org_a: Organization) -> None:
    stored = random_pdq()
    add(own_list(org_a), ("pdq", stored))
    queries = [{"type": "pdq", "value": flip(stored, d)} for d in (0, 1, 16, 31, 32, 40)]
    results = match(api_a, queries).json()["results"]
    assert [[m["distance"] for m in r["matches"]] for r in results] == [
        [0],
        [1],
        [16],
        [31],
        [],
        [],
    ]
    assert results[3]["matches"][0]["matched_value"] == stored


def test_phash_matches_within_10_bits(api_a: Client, org_a: Organization) -> None:
    stored = secrets.token_hex(8)
    add(own_list(org_a, "se"), ("phash", stored))
    queries = [{"type": "phash", "value": flip(stored, d)} for d in (0, 10, 11)]
    results = match(api_a, queries).json()["results"]
    assert [[m["distance"] for m in r["matches"]] for r in results] == [[0], [10], []]
    assert results[0]["matches"][0]["list"]["category"] == "se"


def test_max_distance_lowers_the_radius_per_request(api_a: Client, org_a: Organization) -> None:
    stored = random_pdq()
    add(own_list(org_a), ("pdq", stored))
    query = [{"type": "pdq", "value": flip(stored, 12)}]
    assert match(api_a, query, max_distance={"pdq": 12}).json()["results"][0]["matches"]
    assert match(api_a, query, max_distance={"pdq": 11}).json()["results"][0]["matches"] == []


def test_max_distance_above_the_server_maximum_is_refused(api_a: Client) -> None:
    response = match(api_a, [{"type": "pdq", "value": random_pdq()}], max_distance={"pdq": 32})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "max_distance_too_large"
    assert error["details"] == {"type": "pdq", "max": 31, "asked": 32}


@pytest.mark.parametrize(
    ("max_distance", "code"),
    [
        ({"pdq": -1}, "invalid_max_distance"),
        ({"pdq": "10"}, "invalid_max_distance"),
        ({"pdq": True}, "invalid_max_distance"),
        ([10], "invalid_max_distance"),
        ({"nosuch": 1}, "unknown_type"),
        ({"md5": 1}, "max_distance_too_large"),
    ],
)
def test_malformed_max_distance_is_a_400_with_a_code(
    api_a: Client, max_distance: object, code: str
) -> None:
    response = match(api_a, [{"type": "pdq", "value": random_pdq()}], max_distance=max_distance)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code


def test_a_batch_with_bad_hashes_reports_each_and_still_matches_the_rest(
    api_a: Client, org_a: Organization
) -> None:
    stored = random_pdq()
    md5 = secrets.token_hex(16)
    add(own_list(org_a), ("pdq", stored), ("md5", md5))
    body = [
        {"type": "pdq", "value": stored[:-2]},
        {"type": "pdq", "value": flip(stored, 3)},
        {"type": "nosuch", "value": "00"},
        "not an object",
        {"type": "md5", "value": md5},
        {"type": "md5", "value": 12345},
        {"type": "sha1", "value": "zz" * 20},
    ]
    response = match(api_a, body)
    assert response.status_code == 200
    results = response.json()["results"]
    assert len(results) == len(body)
    codes = [r["error"]["code"] if r["error"] else None for r in results]
    assert codes == [
        "wrong_length",
        None,
        "unknown_type",
        "invalid_item",
        None,
        "invalid_item",
        "bad_characters",
    ]
    assert [len(r["matches"]) for r in results] == [0, 1, 0, 0, 1, 0, 0]
    assert all(r["error"]["message"] for r in results if r["error"])


def test_more_than_1000_hashes_is_refused_whole(api_a: Client) -> None:
    response = match(api_a, [{"type": "md5", "value": "0" * 32}] * 1001)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "too_many_hashes"


@pytest.mark.parametrize(
    "body",
    [[], "text", {"hashes": "x"}, {"hashes": None}, {"nothing": []}],
)
def test_a_malformed_body_is_a_400(api_a: Client, body: object) -> None:
    response = api_a.post("/api/v1/match", body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] in {"invalid_body", "malformed_request"}


def test_broken_json_is_a_400(api_a: Client) -> None:
    response = api_a.post("/api/v1/match", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"]


def test_another_organisations_lists_never_match(
    api_a: Client, org_a: Organization, org_b: Organization
) -> None:
    stored = random_pdq()
    add(own_list(org_b), ("pdq", stored), ("md5", "ab" * 16))
    results = match(
        api_a, [{"type": "pdq", "value": stored}, {"type": "md5", "value": "ab" * 16}]
    ).json()["results"]
    assert [r["matches"] for r in results] == [[], []]
    with scopes_disabled():
        assert not Detection.objects.exists()


def test_the_same_hash_in_two_own_lists_matches_both(api_a: Client, org_a: Organization) -> None:
    stored = random_pdq()
    add(own_list(org_a, "csam"), ("pdq", stored))
    add(own_list(org_a, "se"), ("pdq", stored))
    [result] = match(api_a, [{"type": "pdq", "value": stored}]).json()["results"]
    assert sorted(m["list"]["category"] for m in result["matches"]) == ["csam", "se"]


def test_a_removed_hash_stops_matching_on_the_next_request(
    api_a: Client, org_a: Organization
) -> None:
    stored = random_pdq()
    md5 = secrets.token_hex(16)
    hash_list = own_list(org_a)
    add(hash_list, ("pdq", stored), ("md5", md5))
    query = [{"type": "pdq", "value": flip(stored, 5)}, {"type": "md5", "value": md5}]
    assert all(r["matches"] for r in match(api_a, query).json()["results"])
    remove(hash_list, ("pdq", stored), ("md5", md5))
    assert [r["matches"] for r in match(api_a, query).json()["results"]] == [[], []]
    # ...and a re-add matches again.
    add(hash_list, ("pdq", stored))
    assert match(api_a, query).json()["results"][0]["matches"]


def test_a_perceptual_miss_costs_two_database_statements(
    api_a: Client, org_a: Organization
) -> None:
    """The key, its organisation and the change number come in one statement; then what the
    organisation may match, asked even when nothing is near. The index filters to those lists
    itself, so a miss (or a hash held only elsewhere: tests/matching/test_oracle.py) reads no
    entries."""
    add(own_list(org_a), ("pdq", random_pdq()))
    # Loads the index and records the key's last use (written at most once a minute).
    assert match(api_a, [{"type": "pdq", "value": random_pdq()}]).status_code == 200
    with CaptureQueriesContext(connection) as queries:
        response = match(api_a, [{"type": "pdq", "value": random_pdq()}])
    assert response.status_code == 200
    assert response.json()["results"][0]["matches"] == []
    assert len(queries) == 2, [q["sql"] for q in queries]
    assert "lists_changecounter" in queries[0]["sql"]
    assert "sharing_accessevent" in queries[1]["sql"]


def test_a_deleted_list_stops_matching(api_a: Client, org_a: Organization) -> None:
    stored = random_pdq()
    with scope(organization=org_a.pk):
        extra = list_services.list_create(
            org=org_a, name="Extra", category="csam", description="", actor=SYSTEM
        )
    add(extra, ("pdq", stored))
    assert match(api_a, [{"type": "pdq", "value": stored}]).json()["results"][0]["matches"]
    with scope(organization=org_a.pk):
        list_services.list_delete(hash_list=extra, reason="", actor=SYSTEM)
    assert match(api_a, [{"type": "pdq", "value": stored}]).json()["results"][0]["matches"] == []


def test_a_match_records_a_detection_and_an_audit_event(api_a: Client, org_a: Organization) -> None:
    stored = random_pdq()
    add(own_list(org_a), ("pdq", stored))
    body = match(
        api_a,
        [{"type": "pdq", "value": flip(stored, 2)}, {"type": "md5", "value": "00" * 16}],
        content_ref="upload-123",
    ).json()
    with scope(organization=org_a.pk):
        detection = Detection.objects.get()
        assert body["detection"] == detection.public_id
        assert detection.content_ref == "upload-123"
        assert detection.match_count == 1
        assert detection.tiers == ["own"] and detection.categories == ["csam"]
        assert detection.submitted == [
            {"type": "pdq", "value": flip(stored, 2)},
            {"type": "md5", "value": "00" * 16},
        ]
        assert detection.matches == [body["results"][0]]
        assert detection.status == "new"
        event = AuditEvent.objects.get(action="detection.created")
    assert event.target_id == detection.public_id
    assert event.organization_id == org_a.pk


def test_no_match_records_no_detection(api_a: Client) -> None:
    body = match(api_a, [{"type": "pdq", "value": random_pdq()}]).json()
    assert body["detection"] is None
    with scopes_disabled():
        assert not Detection.objects.exists()


def test_a_long_content_ref_is_refused(api_a: Client) -> None:
    response = match(api_a, [{"type": "md5", "value": "00" * 16}], content_ref="x" * 501)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_content_ref"


def test_the_allow_list_suppresses_matches_and_counts_them(
    api_a: Client, org_a: Organization
) -> None:
    stored = random_pdq()
    add(own_list(org_a), ("pdq", stored))
    benign = flip(stored, 20)
    with scope(organization=org_a.pk):
        allowed = AllowedHash.objects.create(
            organization=org_a, signal_type="pdq", value=bytes.fromhex(benign), added_by_label="t"
        )
    # The allow-listed submission and a near copy of it (3 bits) are suppressed...
    for query in (benign, flip(benign, 3, start=100)):
        [result] = match(api_a, [{"type": "pdq", "value": query}]).json()["results"]
        assert result["matches"] == []
        assert result["allow_listed"] is True
    # ...a different submission that matches the same stored hash is not.
    [result] = match(api_a, [{"type": "pdq", "value": flip(stored, 1)}]).json()["results"]
    assert len(result["matches"]) == 1
    allowed.refresh_from_db()
    assert allowed.suppressed_count == 2
    assert allowed.last_suppressed_at is not None
    with scope(organization=org_a.pk):
        assert Detection.objects.count() == 1


def test_another_organisations_allow_list_changes_nothing(
    api_a: Client, org_a: Organization, org_b: Organization
) -> None:
    stored = random_pdq()
    add(own_list(org_a), ("pdq", stored))
    with scope(organization=org_b.pk):
        AllowedHash.objects.create(
            organization=org_b, signal_type="pdq", value=bytes.fromhex(stored), added_by_label="t"
        )
    assert match(api_a, [{"type": "pdq", "value": stored}]).json()["results"][0]["matches"]


def test_a_key_without_the_match_scope_is_refused(org_a: Organization) -> None:
    _, secret = make_key(org_a, ["lists:write"])
    client = Client(headers={"Authorization": f"Bearer {secret}"})
    response = match(client, [{"type": "md5", "value": "00" * 16}])
    assert response.status_code == 403
