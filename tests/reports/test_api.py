"""Reports by API (issue 21): GET|POST /api/v1/reports, GET|PATCH /api/v1/reports/{id} and the
download, with scope ``reports``, through the same services (and audit events) as the pages.

Org A's key reports; org B's key is the outsider that must find nothing of A. Every hash is
random.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
import time_machine
from django.test import Client
from django_scopes import scope, scopes_disabled

from hub.models import AuditEvent, Organization
from matching.models import Detection
from reports import profiles
from reports.models import Report
from tests.conftest import make_key
from tests.reports.conftest import confirmed_detection, open_report

pytestmark = pytest.mark.django_db

UPLOADER = "uploader-41@platform.example"
START = dt.datetime(2026, 3, 18, 16, 30, tzinfo=dt.UTC)


def api(org: Organization, scopes: list[str] | None = None) -> Client:
    _key, secret = make_key(org, scopes or ["reports"], name=f"key {len(scopes or [])}")
    return Client(headers={"Authorization": f"Bearer {secret}"})


def post(client: Client, url: str, body: Any) -> Any:
    return client.post(url, json.dumps(body), content_type="application/json")


def patch(client: Client, url: str, body: Any) -> Any:
    return client.patch(url, json.dumps(body), content_type="application/json")


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code
    return error


def audit_of(org: Organization, action: str) -> list[AuditEvent]:
    with scopes_disabled():
        return list(AuditEvent.objects.filter(organization=org, action=action).order_by("id"))


# --- opening ------------------------------------------------------------------------------------


def test_a_key_opens_a_report_and_sees_it_whole(org_a: Organization) -> None:
    detection = confirmed_detection(org_a)
    response = post(
        api(org_a),
        "/api/v1/reports",
        {
            "detection": detection.public_id,
            "incident_type": "online_enticement",
            "uploader_ref": UPLOADER,
            "notes": "Seen twice.",
            "file_viewed_by_esp": False,
        },
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["state"] == "draft"
    assert body["detection"] == detection.public_id
    assert body["incident_type"] == "online_enticement"
    assert body["uploader_ref"] == UPLOADER  # its own organisation's key reads it back
    assert (body["notes"], body["file_viewed_by_esp"]) == ("Seen twice.", False)
    assert body["content_ref"] == "upload-1"
    assert (body["hotline_report_id"], body["filed_at"], body["hold"]) == (None, None, None)
    assert sorted(e["value"] for e in body["entries"]) == sorted(
        item["value"] for item in detection.submitted
    )
    assert all(e["listed"] == [] and e["list"] and e["entry"] for e in body["entries"])
    assert body["package"]["detection"]["id"] == detection.public_id
    [event] = audit_of(org_a, "report.opened")
    assert event.actor_type == "api_key"
    assert UPLOADER not in json.dumps(event.metadata)


def test_a_detection_confirmed_as_se_is_refused_saying_why(org_a: Organization) -> None:
    detection = confirmed_detection(org_a, "se")
    error = assert_error(
        post(api(org_a), "/api/v1/reports", {"detection": detection.public_id}),
        409,
        "confirmed_as_se",
    )
    assert "not reported to NCMEC or a hotline" in error["message"]


def test_an_unconfirmed_detection_is_refused(org_a: Organization) -> None:
    with scope(organization=org_a.pk):
        detection = Detection.objects.create(
            organization=org_a, source_label="t", tiers=["own"], categories=["csam"]
        )
    error = assert_error(
        post(api(org_a), "/api/v1/reports", {"detection": detection.public_id}),
        409,
        "not_confirmed",
    )
    assert error["message"] == "Confirm the detection as CSAM before reporting it."


def test_a_detection_is_reported_once_by_api(org_a: Organization) -> None:
    report = open_report(org_a)
    error = assert_error(
        post(api(org_a), "/api/v1/reports", {"detection": report.detection_ref}),
        409,
        "already_reported",
    )
    assert error["details"] == {"report": report.public_id}


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ([], "invalid_body"),
        ({}, "invalid_detection"),
        ({"detection": 5}, "invalid_detection"),
        ({"detection": "d", "colour": "red"}, "unknown_field"),
    ],
)
def test_a_malformed_opening_is_a_400_with_its_code(
    org_a: Organization, body: Any, code: str
) -> None:
    assert_error(post(api(org_a), "/api/v1/reports", body), 400, code)


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("incident_type", "bogus", "invalid_incident_type"),
        ("notes", "x" * 5001, "notes_too_long"),
        ("uploader_ref", ["a"], "invalid_uploader_ref"),
        ("file_viewed_by_esp", "yes", "invalid_file_viewed_by_esp"),
    ],
)
def test_a_bad_field_is_a_400_and_opens_nothing(
    org_a: Organization, field: str, value: Any, code: str
) -> None:
    detection = confirmed_detection(org_a)
    body = {"detection": detection.public_id, field: value}
    assert_error(post(api(org_a), "/api/v1/reports", body), 400, code)
    with scopes_disabled():
        assert not Report.objects.exists()


def test_another_orgs_detection_is_not_found(org_a: Organization, org_b: Organization) -> None:
    detection = confirmed_detection(org_a)
    assert_error(
        post(api(org_b), "/api/v1/reports", {"detection": detection.public_id}), 404, "not_found"
    )


# --- reading ------------------------------------------------------------------------------------


def test_the_list_is_the_orgs_own_newest_first_filtered_and_paged(
    org_a: Organization, org_b: Organization
) -> None:
    with time_machine.travel(START, tick=False):
        first = open_report(org_a)
    with time_machine.travel(START + dt.timedelta(minutes=1), tick=False):
        second = open_report(org_a)
    open_report(org_b)
    client = api(org_a)
    filing = {"state": "filed", "hotline_report_id": "1"}
    assert patch(client, f"/api/v1/reports/{first.public_id}", filing).status_code == 200

    page = client.get("/api/v1/reports?limit=1").json()
    assert [r["id"] for r in page["reports"]] == [second.public_id]
    rest = client.get(f"/api/v1/reports?limit=1&cursor={page['next_cursor']}").json()
    assert [r["id"] for r in rest["reports"]] == [first.public_id]
    assert rest["next_cursor"] is None
    filed = client.get("/api/v1/reports?state=filed").json()
    assert [r["id"] for r in filed["reports"]] == [first.public_id]
    assert filed["reports"][0]["hold"] is not None
    assert_error(client.get("/api/v1/reports?state=lost"), 400, "bad_filter")
    assert_error(client.get("/api/v1/reports?limit=0"), 400, "bad_limit")
    assert_error(client.get("/api/v1/reports?cursor=zz"), 400, "bad_cursor")


def test_another_orgs_report_is_not_found_anywhere(
    org_a: Organization, org_b: Organization
) -> None:
    report = open_report(org_a, notes="A's notes", uploader_ref=UPLOADER)
    outsider = api(org_b)
    url = f"/api/v1/reports/{report.public_id}"
    for response in (
        outsider.get(url),
        patch(outsider, url, {"notes": "B was here"}),
        patch(outsider, url, {"state": "filed", "hotline_report_id": "X"}),
        outsider.get(f"{url}/download"),
    ):
        assert_error(response, 404, "not_found")
        assert UPLOADER not in response.content.decode()
    assert outsider.get("/api/v1/reports").json()["reports"] == []
    with scopes_disabled():
        unchanged = Report.objects.get(pk=report.pk)
    assert (unchanged.notes, unchanged.state) == ("A's notes", "draft")
    assert audit_of(org_a, "report.downloaded") == []


def test_every_endpoint_needs_the_reports_scope(org_a: Organization) -> None:
    report = open_report(org_a)
    unscoped = api(org_a, ["match", "review", "lists:read", "lists:write", "export"])
    url = f"/api/v1/reports/{report.public_id}"
    for response in (
        unscoped.get("/api/v1/reports"),
        post(unscoped, "/api/v1/reports", {"detection": report.detection_ref}),
        unscoped.get(url),
        patch(unscoped, url, {"notes": "x"}),
        unscoped.get(f"{url}/download"),
    ):
        assert_error(response, 403, "permission_denied")
    assert Client().get("/api/v1/reports").status_code == 401


# --- changing -----------------------------------------------------------------------------------


def test_a_draft_is_edited_then_filed_then_acknowledged(org_a: Organization) -> None:
    report = open_report(org_a)
    client = api(org_a)
    url = f"/api/v1/reports/{report.public_id}"

    edited = patch(client, url, {"notes": "More context.", "uploader_ref": UPLOADER})
    assert edited.status_code == 200, edited.content
    assert (edited.json()["notes"], edited.json()["uploader_ref"]) == ("More context.", UPLOADER)

    filed = patch(
        client,
        url,
        {"state": "filed", "hotline_report_id": "CT-555", "filed_at": "2020-01-02T03:04:05Z"},
    )
    assert filed.status_code == 200, filed.content
    assert filed.json()["state"] == "filed"
    assert filed.json()["hotline_report_id"] == "CT-555"
    assert filed.json()["filed_at"] == "2020-01-02T03:04:05+00:00"
    assert filed.json()["hold"] is not None

    assert_error(patch(client, url, {"notes": "late"}), 409, "report_not_draft")
    again = assert_error(
        patch(client, url, {"state": "filed", "hotline_report_id": "CT-556"}),
        409,
        "invalid_transition",
    )
    assert "This report is filed" in again["message"]

    acknowledged = patch(client, url, {"state": "acknowledged"})
    assert acknowledged.status_code == 200, acknowledged.content
    assert acknowledged.json()["state"] == "acknowledged"
    assert acknowledged.json()["acknowledged_at"] is not None
    assert len(audit_of(org_a, "report.updated")) == 1
    assert len(audit_of(org_a, "report.filed")) == 1
    assert len(audit_of(org_a, "report.acknowledged")) == 1


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ("[]", 400, "invalid_body"),
        ({"state": "draft"}, 400, "invalid_state"),
        ({"state": "filed"}, 400, "invalid_hotline_report_id"),
        ({"state": "filed", "hotline_report_id": "1", "filed_at": "yesterday"}, 400,
         "invalid_filed_at"),
        ({"state": "filed", "hotline_report_id": "1", "filed_at": "2020-01-02T03:04:05"}, 400,
         "invalid_filed_at"),
        ({"state": "filed", "hotline_report_id": "1", "filed_at": "2999-01-01T00:00:00Z"}, 400,
         "filed_at_in_future"),
        ({"state": "filed", "hotline_report_id": "1", "notes": "x"}, 400, "unknown_field"),
        ({"state": "acknowledged"}, 409, "invalid_transition"),
        ({"incident_type": "bogus"}, 400, "invalid_incident_type"),
        ({"colour": "red"}, 400, "unknown_field"),
    ],
)  # fmt: skip
def test_a_bad_change_is_refused_with_its_code_and_changes_nothing(
    org_a: Organization, body: Any, status: int, code: str
) -> None:
    report = open_report(org_a)
    raw = body if isinstance(body, str) else json.dumps(body)
    response = api(org_a).patch(
        f"/api/v1/reports/{report.public_id}", raw, content_type="application/json"
    )
    assert_error(response, status, code)
    with scopes_disabled():
        assert Report.objects.get(pk=report.pk).state == "draft"


# --- the download -------------------------------------------------------------------------------


def test_the_download_is_the_profiles_rendering_as_an_attachment_and_is_audited(
    org_a: Organization,
) -> None:
    report = open_report(org_a, uploader_ref=UPLOADER)
    client = api(org_a)
    url = f"/api/v1/reports/{report.public_id}/download"

    response = client.get(url)  # the organisation's profile: generic by default
    with scopes_disabled():
        stored = Report.objects.get(pk=report.pk)
    expected = profiles.render(stored, profile="generic", uploader_ref=UPLOADER)
    assert response.status_code == 200
    assert response.content == expected.body
    assert response["Content-Type"] == expected.content_type
    assert response["Content-Disposition"] == f'attachment; filename="{expected.filename}"'
    assert response["Cache-Control"] == "no-store"

    xml = client.get(f"{url}?profile=ncmec", headers={"Accept": "application/xml"})
    assert xml.status_code == 200, xml.content
    assert xml.content == profiles.render(stored, profile="ncmec", uploader_ref=UPLOADER).body
    assert xml["Content-Type"].startswith("application/xml")

    assert_error(client.get(f"{url}?profile=bogus"), 400, "unknown_profile")
    events = audit_of(org_a, "report.downloaded")
    assert [e.metadata["profile"] for e in events] == ["generic", "ncmec"]
    assert all(UPLOADER not in json.dumps(e.metadata) for e in events)


def test_the_download_follows_the_orgs_profile(org_a: Organization) -> None:
    from hub.audit import Actor
    from reports import services

    report = open_report(org_a)
    with scope(organization=org_a.pk):
        services.report_settings_set(org=org_a, profile="ncmec", actor=Actor(system="test"))
    response = api(org_a).get(f"/api/v1/reports/{report.public_id}/download")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/xml")
