"""The review queue as analysts use it (issue 19): many detections reviewed at once, each audited
as a single review; what each row shows; shadow detections kept out unless asked for; the
retracted and retroactive filters; the single detection's neighbours and keyboard help.

Alice owns org A and reviews, Bob is a viewer in org A, Charlie owns org B. Detections are made
with the ORM; every hash is random.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import Client
from django_scopes import scopes_disabled

from hub.models import AuditEvent, Organization
from matching.models import Detection
from tests.matching.test_detections_api import api, listed
from tests.matching.test_review import (
    a_match,
    allowed_values,
    live_values,
    make_detection,
    own_list,
    refreshed,
)

pytestmark = pytest.mark.django_db

T0 = datetime(2030, 5, 6, 12, 0, tzinfo=UTC)
BULK = "/o/org-a/review/bulk/"


def bulk(client: Client, detections: Sequence[Detection | str], **data: str) -> Any:
    ids = [d if isinstance(d, str) else d.public_id for d in detections]
    return client.post(BULK, {"detection": ids, **data})


def audited(org: Organization, action: str) -> list[str]:
    with scopes_disabled():
        return sorted(
            AuditEvent.objects.filter(organization=org, action=action).values_list(
                "target_id", flat=True
            )
        )


def flagged(org: Organization, **fields: Any) -> Detection:
    detection = make_detection(org, created=fields.pop("created", T0))
    with scopes_disabled():
        Detection.objects.filter(pk=detection.pk).update(**fields)
    return refreshed(detection)


def queue_ids(response: Any) -> list[str]:
    return re.findall(r'data-detection="([\w-]+)"', response.content.decode())


# --- many at once -------------------------------------------------------------------------------


def test_alice_confirms_detections_of_mixed_statuses_at_once_each_audited(
    alice_client: Client, org_a: Organization
) -> None:
    new = make_detection(org_a, created=T0)
    dismissed = make_detection(org_a, created=T0, status=Detection.Status.DISMISSED)
    false_positive = make_detection(org_a, created=T0, status=Detection.Status.FALSE_POSITIVE)
    untouched = make_detection(org_a, created=T0)
    chosen = [new, dismissed, false_positive]

    response = bulk(alice_client, chosen, action="confirm", note="batch")

    assert response.status_code == 302
    assert response["Location"] == "/o/org-a/detections/"
    for detection in chosen:
        after = refreshed(detection)
        assert after.status == Detection.Status.CONFIRMED
        assert after.review_note == "batch"
        assert after.reviewed_by is not None and after.reviewed_by.email == "alice@example.test"
    assert refreshed(untouched).status == Detection.Status.NEW
    # One audit event per detection, as a single review writes, and confirm's side effect: the
    # submitted hashes are in the organisation's own CSAM list.
    assert audited(org_a, "detection.confirmed") == sorted(d.public_id for d in chosen)
    listed_values = live_values(own_list(org_a, "csam"))
    for detection in chosen:
        assert detection.submitted[0]["value"] in listed_values
    with scopes_disabled():
        previous = {
            e.target_id: e.metadata["previous_status"]
            for e in AuditEvent.objects.filter(organization=org_a, action="detection.confirmed")
        }
    assert previous[dismissed.public_id] == "dismissed"
    assert previous[false_positive.public_id] == "false_positive"


def test_bulk_false_positive_and_dismiss_go_through_the_single_review(
    alice_client: Client, org_a: Organization
) -> None:
    first, second = make_detection(org_a, created=T0), make_detection(org_a, created=T0)
    third = make_detection(org_a, created=T0)

    assert bulk(alice_client, [first, second], action="false_positive").status_code == 302
    assert bulk(alice_client, [third], action="dismiss").status_code == 302

    assert {refreshed(first).status, refreshed(second).status} == {"false_positive"}
    assert refreshed(third).status == "dismissed"
    assert audited(org_a, "detection.false_positive") == sorted([first.public_id, second.public_id])
    assert audited(org_a, "detection.dismissed") == [third.public_id]
    assert [value for _, value in allowed_values(org_a)] == sorted(
        [first.submitted[0]["value"], second.submitted[0]["value"]]
    )


def test_another_orgs_detection_among_the_ids_is_a_404_and_nothing_changes(
    alice_client: Client, org_a: Organization, org_b: Organization
) -> None:
    mine = make_detection(org_a, created=T0)
    theirs = make_detection(org_b, created=T0)

    response = bulk(alice_client, [mine, theirs], action="dismiss")

    assert response.status_code == 404
    assert refreshed(mine).status == Detection.Status.NEW
    assert refreshed(theirs).status == Detection.Status.NEW
    assert audited(org_a, "detection.dismissed") == []
    assert audited(org_b, "detection.dismissed") == []
    assert bulk(alice_client, [mine, "no-such-id"], action="dismiss").status_code == 404
    assert refreshed(mine).status == Detection.Status.NEW


def test_a_confirmation_that_cannot_choose_a_list_changes_nothing(
    alice_client: Client, org_a: Organization
) -> None:
    plain = make_detection(org_a, created=T0)
    mixed = make_detection(
        org_a, created=T0, found=[a_match(category="csam"), a_match(category="se")]
    )

    response = bulk(alice_client, [plain, mixed], action="confirm")

    assert response.status_code == 302
    assert refreshed(plain).status == refreshed(mixed).status == Detection.Status.NEW
    assert audited(org_a, "detection.confirmed") == []
    assert live_values(own_list(org_a, "csam")) == {}
    page = alice_client.get(response["Location"]).content.decode()
    assert f"Detection {mixed.public_id}" in page

    # Choosing the list confirms both into it.
    assert bulk(alice_client, [plain, mixed], action="confirm", category="se").status_code == 302
    assert refreshed(mixed).status == refreshed(plain).status == Detection.Status.CONFIRMED
    assert len(live_values(own_list(org_a, "se"))) == 2


def test_bob_the_viewer_may_not_review_in_bulk(bob_client: Client, org_a: Organization) -> None:
    detection = make_detection(org_a, created=T0)
    assert bulk(bob_client, [detection], action="dismiss").status_code == 403
    assert refreshed(detection).status == Detection.Status.NEW


def test_nothing_selected_is_told_and_the_filters_are_kept(
    alice_client: Client, org_a: Organization
) -> None:
    response = alice_client.post(
        BULK, {"action": "dismiss", "query": "status=new&tier=bogus&retracted=yes"}
    )
    assert response.status_code == 302
    # An invalid filter makes the whole query be dropped, never passed on as it came.
    assert response["Location"] == "/o/org-a/detections/"
    response = alice_client.post(BULK, {"action": "dismiss", "query": "status=new"})
    assert response["Location"] == "/o/org-a/detections/?status=new"
    assert (
        "Select at least one detection." in alice_client.get(response["Location"]).content.decode()
    )


# --- the rows -----------------------------------------------------------------------------------


def test_each_row_shows_the_closest_distance_tiers_action_and_flags(
    alice_client: Client, org_a: Organization
) -> None:
    found = [
        {**a_match(tier="verified"), "distance": 12},
        {**a_match(tier="community"), "distance": 5},
    ]
    detection = make_detection(org_a, created=T0, found=found)
    with scopes_disabled():
        Detection.objects.filter(pk=detection.pk).update(
            action="block", retroactive=True, held=True, retracted_at=T0
        )

    page = alice_client.get("/o/org-a/detections/").content.decode()

    row = page.split(f'data-detection="{detection.public_id}"')[1].split("</tr>")[0]
    assert '<td class="num">5</td>' in row
    assert "tier-verified" in row and "tier-community" in row
    assert "action-block" in row
    for flag in ("retracted", "retroactive", "held"):
        assert f"flag-{flag}" in row
    assert "flag-shadow" not in row
    assert 'type="checkbox"' in row


def test_shadow_detections_stay_out_of_the_queue_and_the_api_unless_asked(
    alice_client: Client, org_a: Organization
) -> None:
    plain = make_detection(org_a, created=T0)
    shadow = flagged(org_a, shadow=True, created=T0 + timedelta(minutes=1))

    assert queue_ids(alice_client.get("/o/org-a/detections/")) == [plain.public_id]
    only_shadow = alice_client.get("/o/org-a/detections/?shadow=true")
    assert queue_ids(only_shadow) == [shadow.public_id]
    assert "flag-shadow" in only_shadow.content.decode()

    client = api(org_a)
    assert listed(client) == [plain.public_id]
    assert listed(client, "shadow=true") == [shadow.public_id]
    assert listed(client, "shadow=false") == [plain.public_id]
    refused = client.get("/api/v1/detections?shadow=maybe")
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "bad_filter"


def test_the_retracted_and_retroactive_filters(alice_client: Client, org_a: Organization) -> None:
    plain = make_detection(org_a, created=T0)
    retracted = flagged(org_a, retracted_at=T0, created=T0 + timedelta(minutes=1))
    retroactive = flagged(org_a, retroactive=True, created=T0 + timedelta(minutes=2))

    def ids(query: str) -> list[str]:
        response = alice_client.get(f"/o/org-a/detections/?{query}")
        assert response.status_code == 200
        return queue_ids(response)

    assert ids("retracted=yes") == [retracted.public_id]
    assert ids("retracted=no") == [retroactive.public_id, plain.public_id]
    assert ids("retroactive=yes") == [retroactive.public_id]
    assert ids("retroactive=no&retracted=no") == [plain.public_id]
    assert alice_client.get("/o/org-a/detections/?retracted=perhaps").status_code == 400

    client = api(org_a)
    assert listed(client, "retracted=true") == [retracted.public_id]
    assert listed(client, "retroactive=true") == [retroactive.public_id]
    assert listed(client, "retracted=false&retroactive=false") == [plain.public_id]
    detail = client.get(f"/api/v1/detections/{retracted.public_id}").json()
    assert detail["retracted_at"] == T0.isoformat()


def test_the_dashboard_counts_shadow_retracted_and_waiting_detections(
    bob_client: Client, org_a: Organization, org_b: Organization
) -> None:
    make_detection(org_a, created=T0)
    flagged(org_a, retracted_at=T0)
    flagged(org_a, shadow=True)
    flagged(org_a, shadow=True, status=Detection.Status.DISMISSED)
    flagged(org_b, shadow=True)

    page = bob_client.get("/o/org-a/detections/summary/").content.decode()

    assert 'data-count="new">2<' in page  # the retracted one waits for review too
    assert 'data-count="retracted">1<' in page
    assert 'data-count="shadow">2<' in page
    assert "/o/org-a/detections/summary/" in bob_client.get("/o/org-a/").content.decode()


# --- one detection ------------------------------------------------------------------------------


def test_the_detection_page_links_its_neighbours_and_shows_the_keys(
    alice_client: Client, bob_client: Client, org_a: Organization
) -> None:
    oldest = make_detection(org_a, created=T0)
    middle = make_detection(org_a, created=T0 + timedelta(minutes=1))
    newest = make_detection(org_a, created=T0 + timedelta(minutes=2))
    flagged(org_a, shadow=True, created=T0 + timedelta(seconds=90))

    page = alice_client.get(f"/o/org-a/detections/{middle.public_id}/").content.decode()

    newer = re.search(r'href="/o/org-a/detections/([\w-]+)/"\s+rel="prev"', page)
    older = re.search(r'href="/o/org-a/detections/([\w-]+)/"\s+rel="next"', page)
    assert newer is not None and newer.group(1) == newest.public_id
    assert older is not None and older.group(1) == oldest.public_id
    assert "matching/review.js" in page
    assert 'data-shortcut="c"' in page and 'data-shortcut="f"' in page
    assert 'data-shortcut="d"' in page
    assert "<kbd>j</kbd>" in page
    assert "<script>" not in page  # no inline script: the shortcuts are a static file
    last = alice_client.get(f"/o/org-a/detections/{oldest.public_id}/").content.decode()
    assert 'rel="next"' not in last
    # A viewer reads, never reviews: no review buttons to press.
    assert (
        'data-shortcut="c"'
        not in bob_client.get(f"/o/org-a/detections/{middle.public_id}/").content.decode()
    )


def test_a_detection_of_another_org_is_404_in_the_new_pages(
    alice_client: Client, org_b: Organization
) -> None:
    theirs = make_detection(org_b, created=T0, content_ref="theirs")
    assert alice_client.get(f"/o/org-a/detections/{theirs.public_id}/").status_code == 404
    assert (
        theirs.public_id
        not in alice_client.get("/o/org-a/detections/?shadow=true").content.decode()
    )
