"""Reviewing detections by API (issue 19): list, filter, page, read, and review with scope
``review``, through the same services (and audit events) as the web review queue.

Org A's key reviews; org B's key is the outsider that must find nothing of A. Detections are made
with the ORM, every hash is random.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from django_scopes import scopes_disabled

from hub.models import ApiKey, AuditEvent, Organization
from matching import webhooks
from matching.models import Detection
from tests.conftest import make_key
from tests.matching.test_review import (
    a_match,
    allowed_values,
    live_values,
    make_detection,
    md5,
    own_list,
    pdq,
    refreshed,
)
from tests.matching.test_webhooks import make_endpoint

pytestmark = pytest.mark.django_db


def api(org: Organization, scopes: list[str] | None = None) -> Client:
    _key, secret = make_key(org, scopes or ["review"], name=f"reviewer {len(scopes or [])}")
    return Client(headers={"Authorization": f"Bearer {secret}"})


def review_post(client: Client, detection: Detection | str, **body: Any) -> Any:
    public_id = detection if isinstance(detection, str) else detection.public_id
    return client.post(
        f"/api/v1/detections/{public_id}/review", json.dumps(body), content_type="application/json"
    )


def listed(client: Client, query: str = "") -> list[str]:
    response = client.get(f"/api/v1/detections?{query}")
    assert response.status_code == 200, response.content
    return [d["id"] for d in response.json()["detections"]]


def audit_of(org: Organization, action: str) -> list[AuditEvent]:
    with scopes_disabled():
        return list(AuditEvent.objects.filter(organization=org, action=action))


def assert_error(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.content
    assert response.json()["error"]["code"] == code


# --- reading ------------------------------------------------------------------------------------


def test_it_lists_only_the_orgs_own_detections_newest_first(
    org_a: Organization, org_b: Organization
) -> None:
    now = timezone.now()
    older = make_detection(org_a, created=now - timedelta(hours=2))
    newer = make_detection(org_a, created=now - timedelta(minutes=5))
    theirs = make_detection(org_b)
    assert listed(api(org_a)) == [newer.public_id, older.public_id]
    assert listed(api(org_b)) == [theirs.public_id]


def test_it_filters_by_status_tier_and_category(org_a: Organization) -> None:
    own_csam = make_detection(org_a)
    verified_se = make_detection(org_a, found=[a_match("verified", "se")])
    both = make_detection(org_a, found=[a_match("own", "csam"), a_match("community", "se")])
    dismissed = make_detection(org_a, status=Detection.Status.DISMISSED)
    client = api(org_a)

    def shown(query: str) -> set[str]:
        return set(listed(client, query))

    assert shown("status=dismissed") == {dismissed.public_id}
    assert shown("tier=verified") == {verified_se.public_id}
    assert shown("category=se") == {verified_se.public_id, both.public_id}
    assert shown("status=new&tier=own&category=csam") == {own_csam.public_id, both.public_id}


@pytest.mark.parametrize("query", ["status=open", "tier=mine", "category=xyz", "status=1"])
def test_a_bad_filter_is_a_400_with_its_code(org_a: Organization, query: str) -> None:
    assert_error(api(org_a).get(f"/api/v1/detections?{query}"), 400, "bad_filter")


@pytest.mark.parametrize("query", ["limit=0", "limit=201", "limit=x", "limit=\u0661"])
def test_a_bad_limit_is_a_400(org_a: Organization, query: str) -> None:
    assert_error(api(org_a).get(f"/api/v1/detections?{query}"), 400, "bad_limit")


@pytest.mark.parametrize("cursor", ["nonsense", "czEyMw", "MS5hYmM$", "MS5hIGI"])
def test_a_cursor_not_given_out_is_a_400(org_a: Organization, cursor: str) -> None:
    assert_error(api(org_a).get(f"/api/v1/detections?cursor={cursor}"), 400, "bad_cursor")


def test_pages_walk_every_detection_once_with_an_opaque_cursor(org_a: Organization) -> None:
    now = timezone.now()
    made = [make_detection(org_a, created=now - timedelta(minutes=i)) for i in range(5)]
    # Two at the very same moment: the public id breaks the tie.
    made += [make_detection(org_a, created=now - timedelta(hours=1)) for _ in range(2)]
    client = api(org_a)
    seen: list[str] = []
    cursor = ""
    pages = 0
    while True:
        body = client.get(f"/api/v1/detections?limit=2&cursor={cursor}").json()
        assert len(body["detections"]) <= 2
        seen += [d["id"] for d in body["detections"]]
        pages += 1
        if body["next_cursor"] is None:
            break
        cursor = body["next_cursor"]
        # Opaque, and no row number in it: the last detection's time and public id.
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        assert text.split(".")[1] == seen[-1]
    assert pages == 4
    assert sorted(seen) == sorted(d.public_id for d in made)
    assert seen[:5] == [d.public_id for d in made[:5]]


def test_the_detail_has_the_documented_fields(org_a: Organization) -> None:
    detection = make_detection(org_a, content_ref="upload-1")
    response = api(org_a).get(f"/api/v1/detections/{detection.public_id}")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {
        "id", "created", "content_ref", "status", "tiers", "categories", "match_count",
        "match_total", "matches", "submitted", "reviewed_at", "review_note", "retracted_at",
        "content_link", "action", "shadow", "retroactive", "requested_at", "held",
        "preservation",
    }  # fmt: skip
    assert body["id"] == detection.public_id
    assert body["content_ref"] == "upload-1"
    assert body["status"] == "new"
    assert body["reviewed_at"] is None
    assert body["matches"] == detection.matches
    assert body["submitted"] == detection.submitted
    assert body["created"] == detection.created.isoformat()
    assert body["preservation"] == {"held": False, "until": None}


def test_another_orgs_detection_is_a_404_like_a_missing_one(
    org_a: Organization, org_b: Organization
) -> None:
    theirs = make_detection(org_b)
    client = api(org_a)
    for public_id in (theirs.public_id, "no-such-detection"):
        assert_error(client.get(f"/api/v1/detections/{public_id}"), 404, "not_found")
        assert_error(review_post(client, public_id, action="dismiss"), 404, "not_found")
    assert refreshed(theirs).status == Detection.Status.NEW
    assert not audit_of(org_b, "detection.dismissed")


def test_a_key_without_the_review_scope_is_a_403(org_a: Organization) -> None:
    detection = make_detection(org_a)
    client = api(org_a, ["match", "lists:read", "lists:write", "lists:admin", "export"])
    for response in (
        client.get("/api/v1/detections"),
        client.get(f"/api/v1/detections/{detection.public_id}"),
        review_post(client, detection, action="dismiss"),
    ):
        assert_error(response, 403, "permission_denied")
        assert "'review'" in response.json()["error"]["message"]
    assert refreshed(detection).status == Detection.Status.NEW


# --- reviewing ----------------------------------------------------------------------------------


def test_confirm_adds_the_submitted_hashes_to_the_own_list_and_audits(
    org_a: Organization,
) -> None:
    first, second = pdq(), md5()
    detection = make_detection(
        org_a, submitted=[{"type": "pdq", "value": first}, {"type": "md5", "value": second}]
    )
    response = review_post(api(org_a), detection, action="confirm", note="seen it")
    assert response.status_code == 200, response.content
    body = response.json()
    hash_list = own_list(org_a, "csam")
    assert body["outcome"] == "confirm"
    assert (body["category"], body["list"]) == ("csam", hash_list.public_id)
    assert (body["added"], body["already_present"]) == (2, 0)
    assert body["detection"]["status"] == "confirmed"
    assert body["detection"]["review_note"] == "seen it"
    assert body["detection"]["reviewed_at"]
    assert set(live_values(hash_list)) == {first, second}
    (event,) = audit_of(org_a, "detection.confirmed")
    assert event.target_id == detection.public_id
    assert event.actor_type == "api_key"
    assert event.metadata["category"] == "csam"


def test_confirm_files_under_the_category_asked_for(org_a: Organization) -> None:
    value = pdq()
    detection = make_detection(
        org_a,
        submitted=[{"type": "pdq", "value": value}],
        found=[a_match("own", "csam"), a_match("community", "se")],
    )
    client = api(org_a)
    assert_error(review_post(client, detection, action="confirm"), 400, "category_required")
    response = review_post(client, detection, action="confirm", category="se")
    assert response.status_code == 200
    assert response.json()["category"] == "se"
    assert set(live_values(own_list(org_a, "se"))) == {value}


def test_false_positive_puts_the_hashes_on_the_allow_list_and_audits(
    org_a: Organization,
) -> None:
    value = pdq()
    detection = make_detection(org_a, submitted=[{"type": "pdq", "value": value}])
    response = review_post(api(org_a), detection, action="false_positive")
    assert response.status_code == 200
    assert response.json()["allow_list_added"] == 1
    assert response.json()["detection"]["status"] == "false_positive"
    assert allowed_values(org_a) == [("pdq", value)]
    assert len(audit_of(org_a, "detection.false_positive")) == 1
    assert live_values(own_list(org_a, "csam")) == {}


def test_dismiss_changes_no_list_and_audits(org_a: Organization) -> None:
    detection = make_detection(org_a)
    response = review_post(api(org_a), detection, action="dismiss", note=None)
    assert response.status_code == 200
    assert response.json()["detection"]["status"] == "dismissed"
    assert len(audit_of(org_a, "detection.dismissed")) == 1
    assert allowed_values(org_a) == []
    assert live_values(own_list(org_a, "csam")) == {}


def test_a_second_review_replaces_the_first_as_in_the_ui(org_a: Organization) -> None:
    detection = make_detection(org_a)
    client = api(org_a)
    assert review_post(client, detection, action="dismiss").status_code == 200
    again = review_post(client, detection, action="confirm")
    assert again.status_code == 200
    assert again.json()["detection"]["status"] == "confirmed"
    (event,) = audit_of(org_a, "detection.confirmed")
    assert event.metadata["previous_status"] == "dismissed"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, "bad_action"),
        ({"action": "approve"}, "bad_action"),
        ({"action": 1}, "bad_action"),
        ({"action": "confirm", "category": "other"}, "bad_category"),
        ({"action": "dismiss", "note": 5}, "invalid_note"),
        ({"action": "dismiss", "note": "x" * 2001}, "note_too_long"),
    ],
)
def test_a_bad_review_is_a_400_with_its_code_and_changes_nothing(
    org_a: Organization, body: dict[str, Any], code: str
) -> None:
    detection = make_detection(org_a)
    assert_error(review_post(api(org_a), detection, **body), 400, code)
    assert refreshed(detection).status == Detection.Status.NEW
    with scopes_disabled():
        assert not AuditEvent.objects.filter(target_id=detection.public_id).exists()


def test_a_body_that_is_not_an_object_is_a_400(org_a: Organization) -> None:
    detection = make_detection(org_a)
    response = api(org_a).post(
        f"/api/v1/detections/{detection.public_id}/review", "[]", content_type="application/json"
    )
    assert_error(response, 400, "invalid_body")


# --- the webhook event --------------------------------------------------------------------------


def test_a_review_queues_a_detection_reviewed_event(
    org_a: Organization,
    org_b: Organization,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    endpoint, _secret = make_endpoint(org_a, "https://8.8.8.8/hook")
    make_endpoint(org_b, "https://1.1.1.1/other-org")
    detection = make_detection(org_a)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = review_post(api(org_a), detection, action="confirm")
    assert response.status_code == 200
    queued = [
        c.keywords["kwargs"]
        for c in callbacks
        if getattr(c, "keywords", {}).get("kwargs", {}).get("event") == "detection.reviewed"
    ]
    assert len(queued) == 1
    kwargs = queued[0]
    assert kwargs["endpoint_id"] == endpoint.pk
    assert kwargs["detection_id"] == detection.pk
    assert kwargs["review"]["outcome"] == "confirmed"
    assert kwargs["review"]["category"] == "csam"
    reviewed_at = refreshed(detection).reviewed_at
    assert reviewed_at is not None
    assert kwargs["review"]["reviewed_at"] == reviewed_at.isoformat()


def test_the_reviewed_event_carries_outcome_category_and_time_not_the_reviewer(
    org_a: Organization,
) -> None:
    detection = make_detection(org_a, status=Detection.Status.FALSE_POSITIVE)
    review = {"outcome": "false_positive", "category": None, "reviewed_at": "2025-01-31T09:00:00"}
    body = json.loads(
        webhooks.webhook_payload(
            event="detection.reviewed",
            event_id="evt-1",
            organization=org_a,
            detection=detection,
            created=timezone.now(),
            review=review,
        )
    )
    assert body["event"] == "detection.reviewed"
    assert body["review"] == review
    assert body["detection"]["id"] == detection.public_id
    assert "reviewed_by" not in json.dumps(body)


# --- the scope ----------------------------------------------------------------------------------


def test_the_key_form_and_createapikey_offer_the_review_scope(
    alice_client: Client, org_a: Organization
) -> None:
    from django.core.management import call_command

    assert 'value="review"' in alice_client.get("/o/org-a/keys/").content.decode()
    created = alice_client.post("/o/org-a/keys/", {"name": "queue bot", "scopes": ["review"]})
    assert created.status_code == 201
    call_command(
        "createapikey", "--org", "org-a", "--name", "cli", "--scopes", "review",
        stdout=io.StringIO(), stderr=io.StringIO(),
    )  # fmt: skip
    with scopes_disabled():
        keys = {k.name: k.scopes for k in ApiKey.objects.filter(organization=org_a)}
    assert keys["queue bot"] == ["review"]
    assert keys["cli"] == ["review"]
