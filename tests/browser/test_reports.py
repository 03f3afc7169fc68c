"""Reporting a confirmed detection, as an analyst does it in a real browser (issue 21).

Ana, an analyst of org A (approved), opens a detection confirmed as CSAM, opens a report on it,
fills in what the hotline needs and saves, marks it filed with the hotline's report id and a
date, sees the preservation hold on the report and on the detection (a report's hold has no
Release button), marks it acknowledged, prints the summary and downloads the package in both
hotline profiles. A detection confirmed as SE says why it cannot be reported and offers no
button. Every hash is random; the dates typed are fixed and in the past.
"""

from __future__ import annotations

import json
import re

import pytest
from django_scopes import scopes_disabled
from playwright.sync_api import Page, expect

from hub.models import AuditEvent, Organization, User
from hub.permissions import Role
from matching.models import Detection, PreservationHold
from reports.models import Report
from reports.profiles import IMAGE_STATEMENT
from tests.browser.helpers import log_in, submit, watch_for_problems
from tests.factories import PASSWORD, MembershipFactory, UserFactory
from tests.reports.conftest import confirmed_detection

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CONTENT_REF = "clip-7f3a-browser"
UPLOADER_REF = "account-55123"
HOTLINE_ID = "CT-2025-000123"
NOTES = "Uploaded twice from the same account; account suspended."


@pytest.fixture
def ana(org_a: Organization) -> User:
    """An analyst (not an owner): reports.write is analyst and up."""
    user = UserFactory.create(email="ana@example.test")
    MembershipFactory.create(organization=org_a, user=user, role=Role.ANALYST)
    return user


def report_of(detection: Detection) -> Report:
    with scopes_disabled():
        return Report.objects.get(
            organization=detection.organization, detection_ref=detection.public_id
        )


def test_ana_reports_a_csam_detection_files_it_and_prints_the_summary(
    page: Page, ana: User, org_a: Organization
) -> None:
    problems = watch_for_problems(page)
    detection = confirmed_detection(org_a, "csam", content_ref=CONTENT_REF)
    log_in(page, ana.email, PASSWORD)

    # The detection: confirmed as CSAM, no hold yet, a button to open a report.
    page.goto(f"/o/org-a/detections/{detection.public_id}/")
    preservation = page.locator("#preservation")
    expect(preservation).to_contain_text("No holds")
    report_card = page.locator("#report")
    expect(report_card).to_contain_text("to file with NCMEC's CyberTipline")
    report_card.get_by_role("button", name="Open a report", exact=True).click()

    # The draft: what HashHub found is there, the analyst's fields are a form.
    expect(page).to_have_url(re.compile(r"/o/org-a/reports/[^/]+/$"))
    expect(page.locator("body")).to_contain_text("A draft report is open")
    report = report_of(detection)
    assert page.url.endswith(f"/o/org-a/reports/{report.public_id}/")
    expect(page.locator("h1")).to_contain_text("Draft")
    expect(page.locator(".notice.preserve")).to_contain_text("HashHub never held the image.")
    expect(page.locator(".notice.preserve")).to_contain_text(CONTENT_REF)
    submitted_pdq = detection.submitted[0]["value"]
    expect(page.locator("main")).to_contain_text(submitted_pdq)
    hold_stat = page.locator(".stat.hold")
    expect(hold_stat).to_contain_text("none")
    expect(hold_stat).to_contain_text("marking it filed places one")

    analyst = page.locator("#analyst")
    analyst.locator("#id_incident_type").select_option("online_enticement")
    analyst.locator("#id_uploader_ref").fill(UPLOADER_REF)
    analyst.locator("#id_notes").fill(NOTES)
    analyst.locator("#id_file_viewed_by_esp").select_option("yes")
    analyst.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator("body")).to_contain_text("The report is saved.")
    # Still a draft: the form shows what was saved (the uploader reference decrypted).
    expect(analyst.locator("#id_incident_type")).to_have_value("online_enticement")
    expect(analyst.locator("#id_uploader_ref")).to_have_value(UPLOADER_REF)
    expect(analyst.locator("#id_notes")).to_have_value(NOTES)
    expect(analyst.locator("#id_file_viewed_by_esp")).to_have_value("yes")

    # Mark filed, with the hotline's id and a date in the past.
    state = page.locator("#state")
    expect(state.locator("h2")).to_have_text("Mark filed")
    state.locator("#id_hotline_report_id").fill(HOTLINE_ID)
    state.locator("#id_filed_at").fill("2025-01-15")
    submit(page, "Mark filed")
    expect(page.locator("body")).to_contain_text(
        f"Marked as filed with the hotline (report {HOTLINE_ID})"
    )
    expect(page.locator("h1")).to_contain_text("Filed")
    expect(page.locator(".stats")).to_contain_text(f"filed 15 Jan 2025 as {HOTLINE_ID}")
    expect(hold_stat).to_contain_text("held until")
    expect(hold_stat).to_contain_text("kept from the retention purge")
    # A filed report's fields are read only.
    expect(analyst.locator("form")).to_have_count(0)
    expect(analyst).to_contain_text("Online enticement of children for sexual acts")
    expect(analyst).to_contain_text(UPLOADER_REF)
    expect(analyst).to_contain_text(NOTES)
    expect(analyst).to_contain_text("Only a draft can be changed.")
    expect(state.locator("h2")).to_have_text("Mark acknowledged")

    # The detection shows the report's hold, without a Release button.
    with scopes_disabled():
        hold = PreservationHold.objects.get(detection=detection)
    assert hold.report_ref == report.public_id
    page.locator("nav.crumbs").get_by_role("link", name=re.compile("Detection")).click()
    expect(page).to_have_url(re.compile(rf"/detections/{detection.public_id}/$"))
    expect(page.locator("h1")).to_contain_text("held for preservation")
    row = page.locator(f"#hold-{hold.public_id}")
    expect(row).to_contain_text(report.public_id)
    expect(row).to_contain_text("active")
    expect(row).to_contain_text("until the report's hold ends")
    expect(preservation.get_by_role("button", name="Release")).to_have_count(0)
    # Reported already: the button leads back to the one report rather than opening another.
    page.locator("#report").get_by_role("button", name="Open a report", exact=True).click()
    expect(page).to_have_url(re.compile(rf"/o/org-a/reports/{report.public_id}/$"))
    expect(page.locator("body")).to_contain_text("This detection is reported already")

    # Mark acknowledged, five days later.
    expect(page.locator("#state h2")).to_have_text("Mark acknowledged")
    page.locator("#id_acknowledged_at").fill("2025-01-20")
    submit(page, "Mark acknowledged")
    expect(page.locator("body")).to_contain_text("Marked as acknowledged by the hotline.")
    expect(page.locator("h1")).to_contain_text("Acknowledged")
    expect(page.locator(".stats")).to_contain_text("acknowledged 20 Jan 2025")
    expect(page.locator("#state")).to_have_count(0)
    expect(hold_stat).to_contain_text("held until")

    # The printable summary opens in a new tab.
    with page.expect_popup() as popup_info:
        page.get_by_role("link", name="Print summary", exact=True).click()
    summary = popup_info.value
    summary.wait_for_load_state()
    expect(summary.locator(".statement")).to_have_text(IMAGE_STATEMENT)
    expect(summary.locator("main")).to_contain_text(CONTENT_REF)
    expect(summary.locator("main")).to_contain_text(HOTLINE_ID)
    expect(summary.locator("main")).to_contain_text(UPLOADER_REF)
    expect(summary.locator("main")).to_contain_text("No: HashHub never held the image")
    summary.close()

    # The downloads are attachments: one clicked, the other fetched with the page's cookies.
    downloads = page.locator(".page-head .actions a[download]")
    expect(downloads).to_have_count(2)
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download NCMEC CyberTipline (XML)").click()
    download = download_info.value
    assert download.suggested_filename == f"hashhub-report-{report.public_id}.xml"
    xml = download.path().read_text(encoding="utf-8")
    assert CONTENT_REF in xml
    assert HOTLINE_ID in xml
    generic_href = page.get_by_role("link", name="Download Generic (JSON)").get_attribute("href")
    assert generic_href is not None
    answer = page.request.get(generic_href)
    assert answer.status == 200
    assert answer.headers["content-disposition"] == (
        f'attachment; filename="hashhub-report-{report.public_id}.json"'
    )
    assert answer.headers["content-type"].startswith("application/json")
    package = answer.text()
    json.loads(package)
    assert CONTENT_REF in package
    assert "HashHub never held the image" in package

    # The database: acknowledged, with the dates typed; every step audited, never the uploader.
    report.refresh_from_db()
    assert report.state == Report.State.ACKNOWLEDGED
    assert report.hotline_report_id == HOTLINE_ID
    assert report.filed_at is not None
    assert report.filed_at.isoformat() == "2025-01-15T00:00:00+00:00"
    assert report.acknowledged_at is not None
    assert report.acknowledged_at.isoformat() == "2025-01-20T00:00:00+00:00"
    assert report.incident_type == Report.IncidentType.ONLINE_ENTICEMENT
    assert report.notes == NOTES
    assert report.file_viewed_by_esp is True
    assert UPLOADER_REF not in report.uploader_ref_token
    with scopes_disabled():
        events = list(
            AuditEvent.objects.filter(
                organization=org_a, target_type="report", target_id=report.public_id
            ).order_by("pk")
        )
    assert [e.action for e in events if e.action != "report.downloaded"] == [
        "report.opened",
        "report.updated",
        "report.filed",
        "report.acknowledged",
    ]
    assert {e.actor_user_id for e in events} == {ana.pk}
    updated = next(e for e in events if e.action == "report.updated")
    assert updated.metadata["fields"] == [
        "file_viewed_by_esp",
        "incident_type",
        "notes",
        "uploader_ref",
    ]
    filed = next(e for e in events if e.action == "report.filed")
    assert filed.metadata["hotline_report_id"] == HOTLINE_ID
    assert filed.metadata["hold"] == hold.public_id
    assert sorted(e.metadata["profile"] for e in events if e.action == "report.downloaded") == [
        "generic",
        "ncmec",
        "print",
    ]
    assert all(UPLOADER_REF not in json.dumps(e.metadata) for e in events)
    assert problems == []


def test_a_detection_confirmed_as_se_says_why_it_cannot_be_reported(
    page: Page, ana: User, org_a: Organization
) -> None:
    problems = watch_for_problems(page)
    detection = confirmed_detection(org_a, "se", content_ref=CONTENT_REF)
    log_in(page, ana.email, PASSWORD)

    page.goto(f"/o/org-a/detections/{detection.public_id}/")
    why = page.locator("[data-testid=se-not-reportable]")
    expect(why).to_be_visible()
    expect(why).to_contain_text("confirmed as SE (sexually exploitative), not CSAM")
    expect(why).to_contain_text("cannot be reported")
    expect(page.get_by_role("button", name="Open a report")).to_have_count(0)

    with scopes_disabled():
        assert not Report.objects.filter(organization=org_a).exists()
        assert not AuditEvent.objects.filter(action__startswith="report.").exists()
    assert problems == []
