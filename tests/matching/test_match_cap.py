"""At most ``max_matches`` matches a submitted hash, closest first, counted after the filter to
what the caller may match (DESIGN.md, invariant 9): a cluster of near-duplicates costs a bounded
answer, and another organisation's cluster neither hides the caller's matches nor shows."""

from __future__ import annotations

import io
import random
import secrets

import pytest
from django.test import Client
from django_scopes import scope
from PIL import Image

from hub.audit import Actor
from hub.models import AuditEvent, Organization
from lists import services as list_services
from lists.models import HashList
from matching.models import Detection
from sharing import disputes
from sharing import services as sharing_services
from tests.factories import OrganizationFactory
from tests.matching.test_match_api import add, flip, match, own_list, random_pdq

pytestmark = pytest.mark.django_db

SYSTEM = Actor(system="test")


def near_duplicates(base: str, count: int, *, most_flips: int, seed: int) -> list[str]:
    """``count`` distinct PDQ hashes, each ``base`` with 1 to ``most_flips`` random bits flipped."""
    rng = random.Random(seed)
    number = int(base, 16)
    found: set[str] = set()
    while len(found) < count:
        value = number
        for bit in rng.sample(range(256), rng.randint(1, most_flips)):
            value ^= 1 << bit
        found.add(f"{value:064x}")
    return sorted(found)


def fill(hash_list: HashList, values: list[str], signal_type: str = "pdq") -> None:
    with scope(organization=hash_list.organization_id):
        result = list_services.entry_add(
            hash_list=hash_list,
            items=[list_services.EntryInput(signal_type, v) for v in values],
            actor=SYSTEM,
        )
    assert not result.errors


def distance(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


def test_a_cluster_in_an_own_list_answers_twenty_closest_matches_and_the_total(
    api_a: Client, org_a: Organization
) -> None:
    base = random_pdq()
    cluster = near_duplicates(base, 300, most_flips=8, seed=1)
    fill(own_list(org_a), cluster)

    response = match(api_a, [{"type": "pdq", "value": base}])

    assert response.status_code == 200
    [result] = response.json()["results"]
    assert result["match_count"] == 300
    assert result["truncated"] is True
    assert len(result["matches"]) == 20
    distances = [hit["distance"] for hit in result["matches"]]
    closest = sorted(distance(base, value) for value in cluster)[:20]
    assert distances == closest
    assert all(hit["distance"] == distance(base, hit["matched_value"]) for hit in result["matches"])


def test_max_matches_lowers_the_cap_and_the_detection_keeps_the_total(
    api_a: Client, org_a: Organization
) -> None:
    base = random_pdq()
    fill(own_list(org_a), near_duplicates(base, 60, most_flips=6, seed=2))

    response = match(api_a, [{"type": "pdq", "value": base}], max_matches=5, content_ref="c-1")

    [result] = response.json()["results"]
    assert len(result["matches"]) == 5
    assert result["match_count"] == 60
    assert result["truncated"] is True
    with scope(organization=org_a.pk):
        detection = Detection.objects.get(public_id=response.json()["detection"])
        event = AuditEvent.objects.get(action="detection.created", target_id=detection.public_id)
    assert detection.match_count == 5
    assert detection.match_total == 60
    assert len(detection.matches[0]["matches"]) == 5
    assert detection.matches[0]["match_count"] == 60
    assert event.metadata["match_total"] == 60


def test_an_answer_under_the_cap_is_whole_and_says_so(api_a: Client, org_a: Organization) -> None:
    stored = random_pdq()
    add(own_list(org_a), ("pdq", stored))

    [result] = match(api_a, [{"type": "pdq", "value": flip(stored, 4)}]).json()["results"]

    assert len(result["matches"]) == 1
    assert result["match_count"] == 1
    assert result["truncated"] is False


def test_a_miss_and_a_bad_hash_count_nothing(api_a: Client) -> None:
    results = match(
        api_a, [{"type": "pdq", "value": random_pdq()}, {"type": "pdq", "value": "zz"}]
    ).json()["results"]

    assert [(r["match_count"], r["truncated"]) for r in results] == [(0, False), (0, False)]


def test_another_organisations_cluster_neither_hides_the_callers_match_nor_shows(
    api_a: Client, org_a: Organization, org_b: Organization
) -> None:
    # B keeps 300 near-duplicates of X privately; A holds one hash 14 bits from X. Asked with X
    # itself, A's answer is its one match: B's nearer cluster takes none of the twenty places
    # and adds nothing to the count.
    base = random_pdq()
    fill(own_list(org_b), near_duplicates(base, 300, most_flips=6, seed=3))
    mine = flip(base, 14, start=3)
    add(own_list(org_a), ("pdq", mine))

    [result] = match(api_a, [{"type": "pdq", "value": base}]).json()["results"]

    assert [hit["matched_value"] for hit in result["matches"]] == [mine]
    assert result["match_count"] == 1
    assert result["truncated"] is False


def test_an_exact_hash_held_in_more_lists_than_the_cap_is_capped(
    api_a: Client, org_a: Organization
) -> None:
    md5 = secrets.token_hex(16)
    with scope(organization=org_a.pk):
        lists = [
            list_services.list_create(org=org_a, name=f"List {n}", category="se", actor=SYSTEM)
            for n in range(22)
        ]
    for hash_list in lists:
        fill(hash_list, [md5], "md5")

    [result] = match(api_a, [{"type": "md5", "value": md5}], max_matches=20).json()["results"]

    assert len(result["matches"]) == 20
    assert result["match_count"] == 22
    assert result["truncated"] is True


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (21, "max_matches_too_large"),
        (0, "invalid_max_matches"),
        (-1, "invalid_max_matches"),
        ("5", "invalid_max_matches"),
        (True, "invalid_max_matches"),
        (2.5, "invalid_max_matches"),
    ],
)
def test_a_bad_max_matches_is_a_400_with_a_code(api_a: Client, value: object, code: str) -> None:
    response = match(api_a, [{"type": "pdq", "value": random_pdq()}], max_matches=value)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == code
    assert "max_matches" in response.json()["error"]["message"]


def test_the_hubs_cap_is_a_setting(api_a: Client, org_a: Organization, settings: object) -> None:
    settings.HASHHUB_MAX_MATCHES_PER_HASH = 3  # type: ignore[attr-defined]
    base = random_pdq()
    fill(own_list(org_a), near_duplicates(base, 10, most_flips=4, seed=4))

    [result] = match(api_a, [{"type": "pdq", "value": base}]).json()["results"]
    refused = match(api_a, [{"type": "pdq", "value": base}], max_matches=4)

    assert len(result["matches"]) == 3
    assert result["match_count"] == 10
    assert refused.status_code == 400
    assert refused.json()["error"]["details"] == {"max": 3, "asked": 4}


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.effect_noise((64, 64), 80).convert("RGB").save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("value", ["abc", "0", "21", "-3", "1e3"])
def test_the_image_endpoint_checks_max_matches_too(api_a: Client, value: str) -> None:
    upload = io.BytesIO(_png())
    upload.name = "synthetic.png"
    response = api_a.post("/api/v1/match/image", {"image": upload, "max_matches": value})

    assert response.status_code == 400
    assert response.json()["error"]["code"] in {"invalid_max_matches", "max_matches_too_large"}


def test_the_image_endpoint_answers_match_counts(api_a: Client) -> None:
    upload = io.BytesIO(_png())
    upload.name = "synthetic.png"
    response = api_a.post("/api/v1/match/image", {"image": upload, "max_matches": "3"})

    assert response.status_code == 200
    for result in response.json()["results"]:
        assert result["match_count"] == 0
        assert result["truncated"] is False


def test_a_deeply_nested_max_distance_in_the_image_form_is_a_400(api_a: Client) -> None:
    upload = io.BytesIO(_png())
    upload.name = "synthetic.png"
    response = api_a.post(
        "/api/v1/match/image", {"image": upload, "max_distance": "[" * 5000 + "]" * 5000}
    )

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_max_distance"


def test_disputed_matches_the_caller_ignores_give_their_places_to_the_next_nearest(
    api_a: Client, org_a: Organization, org_b: Organization, settings: object
) -> None:
    # A's policy ignores disputed community entries. The 25 nearest of B's 30 shared
    # near-duplicates are disputed: the index's first 5 are all dropped, and the answer must
    # still be the 5 nearest A takes, counted without the disputed ones.
    settings.HASHHUB_DISPUTE_THRESHOLD = 1  # type: ignore[attr-defined]
    base = random_pdq()
    values = near_duplicates(base, 30, most_flips=8, seed=5)
    shared = own_list(org_b)
    fill(shared, values)
    with scope(organization=org_b.pk):
        sharing_services.list_visibility_set(hash_list=shared, visibility="open", actor=SYSTEM)
    with scope(organization=org_a.pk):
        sharing_services.subscription_list_set(
            org=org_a, public_id=shared.public_id, subscribed=True, actor=SYSTEM
        )
        sharing_services.preferences_set(org=org_a, ignore_disputed=True, actor=SYSTEM)
    disputer = OrganizationFactory.create()
    nearest = sorted(values, key=lambda value: distance(base, value))
    for value in nearest[:25]:
        with scope(organization=disputer.pk):
            disputes.dispute_create(
                org=disputer,
                list_public_id=shared.public_id,
                signal_type="pdq",
                value=value,
                reason="not_csam",
                actor=SYSTEM,
            )
    cut = distance(base, nearest[24])
    undisputed = {value for value in values if value not in set(nearest[:25])}

    [result] = match(api_a, [{"type": "pdq", "value": base}], max_matches=5).json()["results"]

    assert {hit["matched_value"] for hit in result["matches"]} == undisputed
    assert all(hit["distance"] >= cut for hit in result["matches"])
    assert not any(hit["disputed"] for hit in result["matches"])
    assert result["match_count"] == 5
    assert result["truncated"] is False
