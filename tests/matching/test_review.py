"""The review queue, one detection, confirm / false positive / dismiss, the allow list, the purge.

Alice owns org A and reviews, Bob is a viewer in org A (reads, never reviews), Charlie owns org B
and must not reach anything of A. Detections are made with the ORM; every hash is random.
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.http import Http404
from django.test import Client
from django.utils import timezone
from django_scopes import scope, scopes_disabled

from hub.audit import Actor
from hub.models import AuditEvent, Organization, User
from hub.permissions import Role
from lists.models import Entry, HashList
from matching import review
from matching.models import AllowedHash, Detection

pytestmark = pytest.mark.django_db

TEST = Actor(system="test")


def pdq() -> str:
    return secrets.token_hex(32)


def md5() -> str:
    return secrets.token_hex(16)


def a_match(tier: str = "own", category: str = "csam", **list_fields: Any) -> dict[str, Any]:
    listed = {
        "id": secrets.token_urlsafe(12),
        "name": f"{category.upper()} list",
        "category": category,
        "tier": tier,
        "contributor": "Org A" if tier == "own" else "Trusted Source",
        "anonymous": False,
        **list_fields,
    }
    return {"list": listed, "distance": 0, "matched_value": pdq()}


def make_detection(
    org: Organization,
    *,
    submitted: list[dict[str, str]] | None = None,
    found: list[dict[str, Any]] | None = None,
    status: str = Detection.Status.NEW,
    created: datetime | None = None,
    content_ref: str = "",
) -> Detection:
    """A detection of ``org`` whose first submitted hash matched ``found`` (one own CSAM match)."""
    submitted = submitted if submitted is not None else [{"type": "pdq", "value": pdq()}]
    found = found if found is not None else [a_match()]
    matches = [{**submitted[0], "matches": found}] if found else []
    with scopes_disabled():
        return Detection.objects.create(
            organization=org,
            source_label="API key test (hh_test)",
            content_ref=content_ref,
            submitted=submitted,
            matches=matches,
            match_count=len(found),
            tiers=sorted({m["list"]["tier"] for m in found}),
            categories=sorted({m["list"]["category"] for m in found}),
            status=status,
            created=created or timezone.now(),
        )


def own_list(org: Organization, category: str = "csam") -> HashList:
    with scope(organization=org.pk):
        return HashList.objects.get(organization=org, category=category, is_default=True)


def live_values(hash_list: HashList) -> dict[str, str]:
    """The live entries of a list as {hex value: note}."""
    with scope(organization=hash_list.organization_id):
        entries = Entry.objects.filter(hash_list=hash_list, removed_seq__isnull=True)
        return {bytes(e.hash.value).hex(): e.note for e in entries.select_related("hash")}


def allowed_values(org: Organization) -> list[tuple[str, str]]:
    with scope(organization=org.pk):
        return sorted(
            (a.signal_type, bytes(a.value).hex())
            for a in AllowedHash.objects.filter(organization=org)
        )


def refreshed(detection: Detection) -> Detection:
    with scopes_disabled():
        return Detection.objects.select_related("reviewed_by").get(pk=detection.pk)


def queue_ids(response: Any) -> list[str]:
    return re.findall(r"/o/org-a/detections/([\w-]+)/\"", response.content.decode())


def detail_url(detection: Detection, suffix: str = "", org: str = "org-a") -> str:
    return f"/o/{org}/detections/{detection.public_id}/{suffix}"


def review_post(client: Client, detection: Detection, **data: str) -> Any:
    return client.post(detail_url(detection, "review/"), data)


def audit_actions(org: Organization, target_type: str = "detection") -> list[str]:
    with scopes_disabled():
        return list(
            AuditEvent.objects.filter(organization=org, target_type=target_type)
            .order_by("id")
            .values_list("action", flat=True)
        )


def audit_event(org: Organization, action: str) -> AuditEvent:
    with scopes_disabled():
        return AuditEvent.objects.select_related("actor_user").get(organization=org, action=action)


# --- the queue ----------------------------------------------------------------------------------


@pytest.mark.clock
def test_the_queue_lists_only_the_orgs_own_detections_newest_first(
    alice_client: Client, org_a: Organization, org_b: Organization
) -> None:
    now = timezone.now()
    older = make_detection(org_a, created=now - timedelta(hours=2))
    newer = make_detection(org_a, created=now - timedelta(minutes=5))
    theirs = make_detection(org_b)
    response = alice_client.get("/o/org-a/detections/")
    assert response.status_code == 200
    assert queue_ids(response) == [newer.public_id, older.public_id]
    assert theirs.public_id not in response.content.decode()


def test_the_queue_filters_by_status_tier_and_category(
    alice_client: Client, org_a: Organization
) -> None:
    own_csam = make_detection(org_a)
    verified_se = make_detection(org_a, found=[a_match("verified", "se")])
    both = make_detection(org_a, found=[a_match("own", "csam"), a_match("community", "se")])
    dismissed = make_detection(org_a, status=Detection.Status.DISMISSED)

    def shown(query: str) -> set[str]:
        response = alice_client.get(f"/o/org-a/detections/?{query}")
        assert response.status_code == 200
        return set(queue_ids(response))

    assert shown("status=new") == {own_csam.public_id, verified_se.public_id, both.public_id}
    assert shown("status=dismissed") == {dismissed.public_id}
    assert shown("tier=verified") == {verified_se.public_id}
    assert shown("tier=community") == {both.public_id}
    assert shown("category=se") == {verified_se.public_id, both.public_id}
    assert shown("tier=own&category=se&status=new") == {both.public_id}


def test_an_unknown_filter_value_is_a_400(alice_client: Client, org_a: Organization) -> None:
    response = alice_client.get("/o/org-a/detections/?tier=everything")
    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()


@pytest.mark.clock
def test_the_queue_pages_50_at_a_time(alice_client: Client, org_a: Organization) -> None:
    start = timezone.now() - timedelta(hours=1)
    for n in range(51):
        make_detection(org_a, created=start + timedelta(seconds=n))
    first = alice_client.get("/o/org-a/detections/")
    assert len(queue_ids(first)) == 50
    assert 'rel="next"' in first.content.decode()
    second = alice_client.get("/o/org-a/detections/?page=2")
    assert len(queue_ids(second)) == 1


def test_an_htmx_request_gets_only_the_rows(alice_client: Client, org_a: Organization) -> None:
    detection = make_detection(org_a)
    response = alice_client.get("/o/org-a/detections/?status=new", headers={"HX-Request": "true"})
    body = response.content.decode()
    assert response.status_code == 200
    assert detection.public_id in body
    assert "<html" not in body
    assert "HX-Request" in response["Vary"]


def test_the_sidebar_links_the_queue_and_the_allow_list_for_everyone(
    bob_client: Client, alice_client: Client, org_a: Organization
) -> None:
    viewer = bob_client.get("/o/org-a/").content.decode()
    owner = alice_client.get("/o/org-a/").content.decode()
    for body in (viewer, owner):
        assert 'href="/o/org-a/detections/"' in body
        assert 'href="/o/org-a/allow-list/"' in body
    assert 'href="/o/org-a/webhooks/"' in owner
    assert 'href="/o/org-a/webhooks/"' not in viewer


# --- one detection ------------------------------------------------------------------------------


def test_the_detail_page_shows_submitted_hashes_and_every_match(
    alice_client: Client, org_a: Organization
) -> None:
    submitted = [{"type": "pdq", "value": pdq()}, {"type": "md5", "value": md5()}]
    open_match = a_match("community", "se", name="Shared SE", contributor="Org Zeta")
    anonymous = a_match("community", "csam", name="Quiet list", contributor=None, anonymous=True)
    anonymous["distance"] = 7
    detection = make_detection(org_a, submitted=submitted, found=[open_match, anonymous])
    response = alice_client.get(detail_url(detection))
    body = response.content.decode()
    assert response.status_code == 200
    for item in submitted:
        assert item["value"] in body
    assert "Shared SE" in body
    assert "Org Zeta" in body
    assert "Quiet list" in body
    assert "Anonymous member" in body
    assert anonymous["matched_value"] in body
    assert '<td class="num">7</td>' in body
    assert 'value="confirm"' in body


def test_a_viewer_sees_the_detection_but_no_review_form(
    bob_client: Client, org_a: Organization
) -> None:
    detection = make_detection(org_a)
    response = bob_client.get(detail_url(detection))
    assert response.status_code == 200
    assert 'value="confirm"' not in response.content.decode()


def test_charlie_gets_404_for_a_detection_of_org_a(
    charlie_client: Client, org_a: Organization, org_b: Organization
) -> None:
    detection = make_detection(org_a)
    assert charlie_client.get(detail_url(detection, org="org-b")).status_code == 404
    assert charlie_client.get(detail_url(detection, org="org-a")).status_code == 404
    response = review_post(charlie_client, detection, action="dismiss")
    assert response.status_code == 404
    assert (
        charlie_client.post(
            detail_url(detection, "review/", org="org-b"), {"action": "dismiss"}
        ).status_code
        == 404
    )
    assert refreshed(detection).status == Detection.Status.NEW


def test_a_missing_detection_is_404(alice_client: Client, org_a: Organization) -> None:
    assert alice_client.get("/o/org-a/detections/no-such-id/").status_code == 404


def test_the_selector_refuses_another_orgs_detection(
    org_a: Organization, org_b: Organization
) -> None:
    detection = make_detection(org_a)
    with scope(organization=org_b.pk), pytest.raises(Http404):
        review.get_detection_for_org(org=org_b, public_id=detection.public_id)


# --- reviewing ----------------------------------------------------------------------------------


def test_confirm_adds_the_submitted_hashes_to_the_orgs_own_list_and_audits(
    alice_client: Client, alice: User, org_a: Organization
) -> None:
    submitted = [{"type": "pdq", "value": pdq()}, {"type": "md5", "value": md5().upper()}]
    detection = make_detection(org_a, submitted=submitted)
    response = review_post(alice_client, detection, action="confirm", note="seen it")
    assert response.status_code == 302
    assert response["Location"] == detail_url(detection)
    entries = live_values(own_list(org_a, "csam"))
    assert set(entries) == {submitted[0]["value"], submitted[1]["value"].lower()}
    assert all(detection.public_id in note for note in entries.values())
    assert live_values(own_list(org_a, "se")) == {}
    confirmed = refreshed(detection)
    assert confirmed.status == Detection.Status.CONFIRMED
    assert confirmed.reviewed_by == alice
    assert confirmed.reviewed_at is not None
    assert confirmed.review_note == "seen it"
    assert audit_actions(org_a) == ["detection.confirmed"]
    event = audit_event(org_a, "detection.confirmed")
    assert event.target_id == detection.public_id
    assert event.actor_user == alice
    assert event.metadata["added"] == 2
    assert "Confirmed: 2 hashes added" in alice_client.get(detail_url(detection)).content.decode()


def test_confirm_uses_the_category_asked_for(alice_client: Client, org_a: Organization) -> None:
    detection = make_detection(org_a)  # the match is CSAM, the reviewer files it under SE
    review_post(alice_client, detection, action="confirm", category="se")
    assert len(live_values(own_list(org_a, "se"))) == 1
    assert live_values(own_list(org_a, "csam")) == {}


def test_confirm_needs_a_category_when_the_matches_disagree(
    alice_client: Client, org_a: Organization
) -> None:
    detection = make_detection(org_a, found=[a_match("own", "csam"), a_match("verified", "se")])
    response = review_post(alice_client, detection, action="confirm")
    assert response.status_code == 400
    assert "choose the CSAM or the SE list" in response.content.decode()
    assert refreshed(detection).status == Detection.Status.NEW
    assert (
        review_post(alice_client, detection, action="confirm", category="csam").status_code == 302
    )


def test_confirming_twice_adds_each_hash_once(alice_client: Client, org_a: Organization) -> None:
    detection = make_detection(org_a)
    review_post(alice_client, detection, action="confirm")
    review_post(alice_client, detection, action="dismiss")
    review_post(alice_client, detection, action="confirm")
    csam = own_list(org_a)
    with scope(organization=org_a.pk):
        assert Entry.objects.filter(hash_list=csam).count() == 1
    assert refreshed(detection).status == Detection.Status.CONFIRMED


def test_false_positive_puts_the_submitted_hashes_on_the_allow_list_once(
    alice_client: Client, org_a: Organization
) -> None:
    submitted = [{"type": "pdq", "value": pdq()}, {"type": "md5", "value": md5()}]
    detection = make_detection(org_a, submitted=submitted)
    again = make_detection(org_a, submitted=submitted)
    response = review_post(alice_client, detection, action="false_positive", note="a meme")
    assert response.status_code == 302
    review_post(alice_client, detection, action="false_positive")
    review_post(alice_client, again, action="false_positive")
    assert allowed_values(org_a) == sorted(
        [("md5", submitted[1]["value"]), ("pdq", submitted[0]["value"])]
    )
    with scope(organization=org_a.pk):
        rows = list(AllowedHash.objects.filter(organization=org_a))
    assert {row.note for row in rows} == {"a meme"}
    assert {row.detection_id for row in rows} == {detection.pk}
    assert {row.added_by_label for row in rows} == {"alice@example.test"}
    assert refreshed(detection).status == Detection.Status.FALSE_POSITIVE
    assert audit_actions(org_a) == ["detection.false_positive"] * 3
    assert live_values(own_list(org_a)) == {}


def test_confirm_takes_the_hashes_off_the_allow_list(
    alice_client: Client, org_a: Organization
) -> None:
    detection = make_detection(org_a)
    review_post(alice_client, detection, action="false_positive")
    assert len(allowed_values(org_a)) == 1
    review_post(alice_client, detection, action="confirm")
    assert allowed_values(org_a) == []


def test_dismiss_changes_only_the_status(alice_client: Client, org_a: Organization) -> None:
    detection = make_detection(org_a)
    response = review_post(alice_client, detection, action="dismiss", note="duplicate report")
    assert response.status_code == 302
    dismissed = refreshed(detection)
    assert dismissed.status == Detection.Status.DISMISSED
    assert dismissed.review_note == "duplicate report"
    assert live_values(own_list(org_a)) == {}
    assert allowed_values(org_a) == []
    assert audit_actions(org_a) == ["detection.dismissed"]


def test_bob_the_viewer_may_not_review(bob_client: Client, org_a: Organization) -> None:
    detection = make_detection(org_a)
    for action in ("confirm", "false_positive", "dismiss"):
        assert review_post(bob_client, detection, action=action).status_code == 403
    assert refreshed(detection).status == Detection.Status.NEW
    assert audit_actions(org_a) == []


def test_an_analyst_may_review(org_a: Organization) -> None:
    from tests.conftest import _member, login

    analyst = login(_member(org_a, "dana@example.test", Role.ANALYST))
    detection = make_detection(org_a)
    assert review_post(analyst, detection, action="dismiss").status_code == 302


@pytest.mark.parametrize("data", [{}, {"action": "delete"}, {"action": "confirm", "category": "x"}])
def test_a_bad_review_is_a_400_and_changes_nothing(
    alice_client: Client, org_a: Organization, data: dict[str, str]
) -> None:
    detection = make_detection(org_a)
    response = alice_client.post(detail_url(detection, "review/"), data)
    assert response.status_code == 400
    assert refreshed(detection).status == Detection.Status.NEW
    assert audit_actions(org_a) == []


def test_review_is_post_only(alice_client: Client, org_a: Organization) -> None:
    detection = make_detection(org_a)
    assert alice_client.get(detail_url(detection, "review/")).status_code == 405


# --- the allow list -----------------------------------------------------------------------------


@pytest.mark.clock
def test_the_allow_list_shows_hashes_and_how_often_they_suppressed(
    bob_client: Client, org_a: Organization
) -> None:
    value = pdq()
    with scope(organization=org_a.pk):
        AllowedHash.objects.create(
            organization=org_a,
            signal_type="pdq",
            value=bytes.fromhex(value),
            note="benign meme",
            added_by_label="alice@example.test",
            suppressed_count=1234,
            last_suppressed_at=timezone.now() - timedelta(hours=3),
        )
    response = bob_client.get("/o/org-a/allow-list/")
    body = response.content.decode()
    assert response.status_code == 200
    assert value in body
    assert "benign meme" in body
    assert "1,234" in body
    assert "3\xa0hours ago" in body
    assert "/remove/" not in body  # a viewer sees no remove button


def test_removing_from_the_allow_list(
    alice_client: Client, bob_client: Client, org_a: Organization
) -> None:
    detection = make_detection(org_a)
    review_post(alice_client, detection, action="false_positive")
    with scope(organization=org_a.pk):
        allowed = AllowedHash.objects.get(organization=org_a)
    url = f"/o/org-a/allow-list/{allowed.public_id}/remove/"
    assert bob_client.post(url).status_code == 403
    assert alice_client.get(url).status_code == 405
    response = alice_client.post(url)
    assert response.status_code == 302
    assert response["Location"] == "/o/org-a/allow-list/"
    assert allowed_values(org_a) == []
    assert audit_actions(org_a, "allowed_hash") == ["allow_list.removed"]


def test_charlie_cannot_remove_org_as_allowed_hash(
    charlie_client: Client, alice_client: Client, org_a: Organization, org_b: Organization
) -> None:
    detection = make_detection(org_a)
    review_post(alice_client, detection, action="false_positive")
    with scope(organization=org_a.pk):
        allowed = AllowedHash.objects.get(organization=org_a)
    assert (
        charlie_client.post(f"/o/org-b/allow-list/{allowed.public_id}/remove/").status_code == 404
    )
    assert len(allowed_values(org_a)) == 1


# --- retention ----------------------------------------------------------------------------------


@pytest.mark.clock
def test_purge_deletes_only_detections_older_than_the_retention(
    org_a: Organization, org_b: Organization, settings: Any
) -> None:
    settings.HASHHUB_DETECTION_RETENTION_DAYS = 90
    now = timezone.now()
    old_a = make_detection(org_a, created=now - timedelta(days=91))
    old_b = make_detection(org_b, created=now - timedelta(days=200))
    kept = make_detection(org_a, created=now - timedelta(days=89))
    fresh = make_detection(org_b, created=now)
    with scope(organization=org_a.pk):
        AllowedHash.objects.create(
            organization=org_a, signal_type="md5", value=bytes(16), detection=old_a
        )
    assert review.detections_purge(now=now) == 2
    with scopes_disabled():
        left = set(Detection.objects.values_list("pk", flat=True))
        assert AllowedHash.objects.get(organization=org_a).detection is None
    assert left == {kept.pk, fresh.pk}
    assert old_a.pk not in left and old_b.pk not in left
    assert audit_event(org_a, "detections.purged").metadata["purged"] == 1
    assert review.detections_purge(now=now) == 0
