"""Preservation holds by hand (issue 21): placed and released on the detection's page and through
the API (scope ``review``), audited, shown; another organisation's detection or hold is a 404.

Alice owns org A and reviews; Bob is a viewer in org A and may only read; Charlie owns org B
and must reach nothing of A. Detections are made with the ORM; times are set with time-machine.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
import time_machine
from django.test import Client
from django.urls import reverse
from django_scopes import scope, scopes_disabled

from hub.audit import Actor
from hub.errors import ServiceError
from hub.models import AuditEvent, Organization
from matching import preservation
from matching.models import Detection, PreservationHold
from tests.matching.test_detections_api import api, assert_error
from tests.matching.test_review import detail_url, make_detection

pytestmark = pytest.mark.django_db

SYSTEM = Actor(system="test")
T0 = dt.datetime(2026, 5, 4, 10, 0, tzinfo=dt.UTC)


def holds(detection: Detection) -> list[PreservationHold]:
    with scopes_disabled():
        return list(PreservationHold.objects.filter(detection=detection).order_by("pk"))


def events(org: Organization, action: str) -> list[AuditEvent]:
    with scopes_disabled():
        return list(AuditEvent.objects.filter(organization=org, action=action).order_by("pk"))


def place(detection: Detection, **kwargs: Any) -> PreservationHold:
    with scope(organization=detection.organization_id):
        return preservation.hold_place(detection=detection, actor=SYSTEM, **kwargs)


def post_json(client: Client, url: str, body: Any = None) -> Any:
    text = "" if body is None else json.dumps(body)
    return client.post(url, text, content_type="application/json")


# --- the page -----------------------------------------------------------------------------------


def test_alice_places_a_hold_from_the_page_and_it_is_audited(
    alice_client: Client, org_a: Organization
) -> None:
    detection = make_detection(org_a)
    with time_machine.travel(T0, tick=False):
        response = alice_client.post(
            detail_url(detection, "holds/"), {"days": "30", "reason": "legal request 17"}
        )
    assert response.status_code == 302
    assert response["Location"] == detail_url(detection)
    [hold] = holds(detection)
    assert (hold.until, hold.reason, hold.report_ref) == (
        T0 + dt.timedelta(days=30),
        "legal request 17",
        "",
    )
    assert hold.placed_by_label == "alice@example.test"
    [line] = events(org_a, "preservation.held")
    assert line.target_id == detection.public_id
    assert line.metadata == {"hold": hold.public_id, "until": hold.until.isoformat(), "days": 30}
    assert line.actor_user is not None and line.actor_user.email == "alice@example.test"


def test_an_empty_days_field_holds_for_the_hubs_preservation_period(
    alice_client: Client, org_a: Organization, settings: Any
) -> None:
    settings.HASHHUB_PRESERVATION_HOLD_DAYS = 400
    detection = make_detection(org_a)
    page = alice_client.get(detail_url(detection)).content.decode()
    assert 'name="days"' in page and 'value="400"' in page
    with time_machine.travel(T0, tick=False):
        assert alice_client.post(detail_url(detection, "holds/"), {"days": ""}).status_code == 302
    [hold] = holds(detection)
    assert hold.until == T0 + dt.timedelta(days=400)


@pytest.mark.parametrize("days", ["0", "-3", "3651", "soon"])
def test_bad_days_on_the_page_are_a_400_and_hold_nothing(
    alice_client: Client, org_a: Organization, days: str
) -> None:
    detection = make_detection(org_a)
    response = alice_client.post(detail_url(detection, "holds/"), {"days": days})
    assert response.status_code == 400
    assert "Hold for (days)" in response.content.decode()
    assert holds(detection) == []
    assert events(org_a, "preservation.held") == []


def test_the_page_lists_the_holds_and_their_state(
    alice_client: Client, org_a: Organization
) -> None:
    detection = make_detection(org_a)
    with time_machine.travel(T0, tick=False):
        by_report = place(detection, days=365, report_ref="rep-123", reason="report filed")
        by_hand = place(detection, days=10, reason="ticket 9")
        with scope(organization=org_a.pk):
            preservation.hold_release(hold=by_hand, actor=Actor(system="legal"))
        page = alice_client.get(detail_url(detection)).content.decode()
    assert "held for preservation" in page
    assert "report filed" in page and "ticket 9" in page
    assert "rep-123" in page  # which report placed it
    assert "4 May 2027" in page  # until, a year on
    assert "released 4 May 2026" in page and "legal" in page
    # A report's hold preserves what a hotline has: it is never released by hand.
    release_url = reverse(
        "detection_hold_release", args=["org-a", detection.public_id, by_report.public_id]
    )
    assert release_url not in page
    assert "until the report's hold ends" in page
    with scope(organization=org_a.pk), pytest.raises(ServiceError) as refused:
        preservation.hold_release(hold=by_report, actor=Actor(system="legal"))
    assert refused.value.code == "report_hold"
    released_url = reverse(
        "detection_hold_release", args=["org-a", detection.public_id, by_hand.public_id]
    )
    assert released_url not in page  # nothing to release any more


def test_a_detection_without_holds_says_so_and_the_queue_badges_held_ones(
    alice_client: Client, org_a: Organization
) -> None:
    loose = make_detection(org_a)
    held = make_detection(org_a)
    place(held, days=5)
    assert "No holds" in alice_client.get(detail_url(loose)).content.decode()
    queue = alice_client.get("/o/org-a/detections/").content.decode()
    rows = {
        public_id: queue.split(f'data-detection="{public_id}"')[1].split("</tr>")[0]
        for public_id in (loose.public_id, held.public_id)
    }
    assert "held for preservation" in rows[held.public_id]
    assert "held for preservation" not in rows[loose.public_id]


def test_alice_releases_a_hold_and_a_second_release_is_refused(
    alice_client: Client, org_a: Organization
) -> None:
    detection = make_detection(org_a)
    hold = place(detection, days=30)
    url = detail_url(detection, f"holds/{hold.public_id}/release/")
    response = alice_client.post(url)
    assert response.status_code == 302 and response["Location"] == detail_url(detection)
    [released] = holds(detection)
    assert released.released_at is not None
    assert released.released_by_label == "alice@example.test"
    [line] = events(org_a, "preservation.released")
    assert line.metadata == {"hold": hold.public_id}
    assert alice_client.post(url).status_code == 409
    assert len(events(org_a, "preservation.released")) == 1


def test_bob_a_viewer_sees_the_holds_but_neither_places_nor_releases(
    bob_client: Client, org_a: Organization
) -> None:
    detection = make_detection(org_a)
    hold = place(detection, days=30, reason="visible to viewers")
    page = bob_client.get(detail_url(detection)).content.decode()
    assert "visible to viewers" in page and "Place a hold" not in page
    assert bob_client.post(detail_url(detection, "holds/"), {"days": "5"}).status_code == 403
    release = detail_url(detection, f"holds/{hold.public_id}/release/")
    assert bob_client.post(release).status_code == 403
    assert len(holds(detection)) == 1 and holds(detection)[0].released_at is None


def test_another_orgs_detection_or_hold_is_a_404_on_the_pages(
    alice_client: Client, charlie_client: Client, org_a: Organization, org_b: Organization
) -> None:
    a_detection = make_detection(org_a)
    a_hold = place(a_detection, days=30)
    b_detection = make_detection(org_b)
    b_hold = place(b_detection, days=30)
    # Charlie names A's detection and hold under his own organisation.
    own_org = detail_url(a_detection, "holds/", org="org-b")
    assert charlie_client.post(own_org, {"days": "5"}).status_code == 404
    theirs = detail_url(b_detection, f"holds/{a_hold.public_id}/release/", org="org-b")
    assert charlie_client.post(theirs).status_code == 404
    # A's own hold named under another of A's detections is no hold of that detection.
    other = make_detection(org_a)
    mismatched = detail_url(other, f"holds/{a_hold.public_id}/release/")
    assert alice_client.post(mismatched).status_code == 404
    assert (
        alice_client.post(detail_url(a_detection, f"holds/{b_hold.public_id}/release/")).status_code
        == 404
    )
    assert len(holds(a_detection)) == 1 and holds(a_detection)[0].released_at is None
    assert holds(b_detection)[0].released_at is None


# --- reporting from the page --------------------------------------------------------------------


def confirmed(org: Organization, category: str) -> Detection:
    detection = make_detection(org, status=Detection.Status.CONFIRMED)
    with scopes_disabled():
        Detection.objects.filter(pk=detection.pk).update(confirmed_category=category)
        return Detection.objects.get(pk=detection.pk)


def test_a_detection_confirmed_as_csam_offers_to_open_a_report(
    alice_client: Client, org_a: Organization
) -> None:
    detection = confirmed(org_a, "csam")
    page = alice_client.get(detail_url(detection)).content.decode()
    assert reverse("report_open", args=["org-a", detection.public_id]) in page
    assert "Open a report" in page


def test_a_detection_confirmed_as_se_says_why_it_cannot_be_reported(
    alice_client: Client, org_a: Organization
) -> None:
    detection = confirmed(org_a, "se")
    page = alice_client.get(detail_url(detection)).content.decode()
    assert "Open a report" not in page
    assert "not reported to NCMEC or a hotline" in page


def test_a_detection_not_yet_confirmed_offers_no_report(
    alice_client: Client, org_a: Organization
) -> None:
    page = alice_client.get(detail_url(make_detection(org_a))).content.decode()
    assert "Open a report" not in page and 'id="report"' not in page


# --- the API ------------------------------------------------------------------------------------


def holds_url(detection: Detection | str, suffix: str = "") -> str:
    public_id = detection if isinstance(detection, str) else detection.public_id
    return f"/api/v1/detections/{public_id}/holds{suffix}"


def test_the_api_places_lists_and_releases_a_hold(org_a: Organization) -> None:
    client = api(org_a)
    detection = make_detection(org_a)
    with time_machine.travel(T0, tick=False):
        assert client.get(f"/api/v1/detections/{detection.public_id}").json()["preservation"] == {
            "held": False,
            "until": None,
        }
        created = post_json(client, holds_url(detection), {"days": 90, "reason": "subpoena"})
        assert created.status_code == 201, created.content
        body = created.json()
        assert body["detection"] == detection.public_id
        assert body["until"] == (T0 + dt.timedelta(days=90)).isoformat()
        assert (body["reason"], body["report"], body["active"]) == ("subpoena", "", True)
        assert body["released_at"] is None and body["placed_by"].startswith("API key")
        shown = client.get(f"/api/v1/detections/{detection.public_id}").json()["preservation"]
        assert shown == {"held": True, "until": body["until"]}
        [listed] = client.get("/api/v1/detections").json()["detections"]
        assert listed["preservation"] == shown
        assert [h["id"] for h in client.get(holds_url(detection)).json()["holds"]] == [body["id"]]
        released = post_json(client, holds_url(detection, f"/{body['id']}/release"))
        assert released.status_code == 200, released.content
        assert released.json()["active"] is False and released.json()["released_at"]
        assert_error(
            post_json(client, holds_url(detection, f"/{body['id']}/release")), 409, "not_active"
        )
        after = client.get(f"/api/v1/detections/{detection.public_id}").json()["preservation"]
    assert after == {"held": False, "until": None}
    assert [e.target_id for e in events(org_a, "preservation.held")] == [detection.public_id]
    assert len(events(org_a, "preservation.released")) == 1


def test_the_api_holds_for_the_default_period_without_a_body(
    org_a: Organization, settings: Any
) -> None:
    settings.HASHHUB_PRESERVATION_HOLD_DAYS = 365
    detection = make_detection(org_a)
    with time_machine.travel(T0, tick=False):
        created = post_json(api(org_a), holds_url(detection))
    assert created.status_code == 201, created.content
    assert created.json()["until"] == (T0 + dt.timedelta(days=365)).isoformat()


def test_the_latest_active_until_is_the_detections_preservation(org_a: Organization) -> None:
    detection = make_detection(org_a)
    with time_machine.travel(T0, tick=False):
        place(detection, days=10)
        place(detection, days=40)
        state = api(org_a).get(f"/api/v1/detections/{detection.public_id}").json()
    assert state["preservation"]["until"] == (T0 + dt.timedelta(days=40)).isoformat()


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"days": 0}, "invalid_days"),
        ({"days": 3651}, "invalid_days"),
        ({"days": "30"}, "invalid_days"),
        ({"days": True}, "invalid_days"),
        ({"days": 1.5}, "invalid_days"),
        ({"reason": 7}, "invalid_reason"),
        ({"reason": "x" * 501}, "reason_too_long"),
        ([1, 2], "invalid_body"),
    ],
)
def test_bad_hold_bodies_are_a_400_with_a_code(org_a: Organization, body: Any, code: str) -> None:
    detection = make_detection(org_a)
    assert_error(post_json(api(org_a), holds_url(detection), body), 400, code)
    assert holds(detection) == []


def test_another_orgs_detection_or_hold_is_a_404_in_the_api(
    org_a: Organization, org_b: Organization
) -> None:
    a_detection = make_detection(org_a)
    a_hold = place(a_detection, days=30)
    b_detection = make_detection(org_b)
    b_hold = place(b_detection, days=30)
    b_client = api(org_b)
    assert_error(b_client.get(holds_url(a_detection)), 404, "not_found")
    assert_error(post_json(b_client, holds_url(a_detection), {"days": 5}), 404, "not_found")
    assert_error(
        post_json(b_client, holds_url(a_detection, f"/{a_hold.public_id}/release")),
        404,
        "not_found",
    )
    assert_error(
        post_json(b_client, holds_url(b_detection, f"/{a_hold.public_id}/release")),
        404,
        "not_found",
    )
    assert_error(
        post_json(api(org_a), holds_url(a_detection, f"/{b_hold.public_id}/release")),
        404,
        "not_found",
    )
    assert len(holds(a_detection)) == 1 and holds(a_detection)[0].released_at is None


def test_a_key_without_the_review_scope_is_refused(org_a: Organization) -> None:
    detection = make_detection(org_a)
    client = api(org_a, ["match"])
    assert client.get(holds_url(detection)).status_code == 403
    assert post_json(client, holds_url(detection), {"days": 5}).status_code == 403
    assert holds(detection) == []
