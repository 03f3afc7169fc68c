"""The report pages: opening a report from a detection, the draft's fields, marking it filed and
acknowledged, the downloads, the printable summary, the hotline profile, and who may do what.

Alice owns org A, Annie is an analyst there, Bob a viewer; Charlie owns org B and must reach
nothing of A's. Every hash is random (tests/reports/conftest.py).
"""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
import time_machine
from django.test import Client
from django.urls import reverse
from django_scopes import scope, scopes_disabled

from hub.models import AuditEvent, Organization, User
from hub.permissions import Role
from matching.models import Detection
from reports.models import Report, ReportSettings
from tests.conftest import _member, login
from tests.reports.conftest import confirmed_detection, open_report

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 5, 4, 10, 0, tzinfo=dt.UTC)


@pytest.fixture
def annie(org_a: Organization) -> User:
    return _member(org_a, "annie@example.test", Role.ANALYST)


def detail_url(report: Report) -> str:
    return reverse("report_detail", args=[report.organization.slug, report.public_id])


def reports_of(org: Organization) -> list[Report]:
    with scopes_disabled():
        return list(Report.objects.filter(organization=org))


def refreshed(report: Report) -> Report:
    with scopes_disabled():
        return Report.objects.select_related("organization").get(pk=report.pk)


def audited(org: Organization, action: str) -> list[AuditEvent]:
    with scopes_disabled():
        return list(AuditEvent.objects.filter(organization=org, action=action).order_by("pk"))


def messages_of(client: Client, url: str) -> str:
    return client.get(url).content.decode()


# --- opening a report ---------------------------------------------------------------------------


def test_an_analyst_opens_a_report_from_a_csam_detection_and_lands_on_the_draft(
    org_a: Organization, annie: User
) -> None:
    detection = confirmed_detection(org_a, "csam", content_ref="post-9917")
    client = login(annie)
    response = client.post(reverse("report_open", args=[org_a.slug, detection.public_id]))
    [report] = reports_of(org_a)
    assert response.status_code == 302
    assert response["Location"] == detail_url(report)
    page = client.get(response["Location"]).content.decode()
    assert "A draft report is open" in page
    assert "HashHub never held the image" in page
    assert "post-9917" in page
    assert "must preserve" in page
    for submitted in detection.submitted:
        assert submitted["value"] in page
    assert "Trusted Source CSAM" in page  # the matched list
    assert ">A1<" in page  # its labels
    assert "Draft" in page


def test_a_detection_confirmed_as_se_is_refused_and_the_page_says_why(
    org_a: Organization, alice: User, se_detection: Detection
) -> None:
    client = login(alice)
    url = reverse("report_open", args=[org_a.slug, se_detection.public_id])
    response = client.post(url)
    assert response.status_code == 302
    assert response["Location"] == reverse(
        "detection_detail", args=[org_a.slug, se_detection.public_id]
    )
    page = client.get(response["Location"]).content.decode()
    assert "is not reported to NCMEC or a hotline" in page
    assert reports_of(org_a) == []


def test_an_unconfirmed_detection_is_refused(org_a: Organization, alice: User) -> None:
    with scope(organization=org_a.pk):
        detection = Detection.objects.create(
            organization=org_a, source_label="test", tiers=["own"], categories=["csam"]
        )
    client = login(alice)
    response = client.post(reverse("report_open", args=[org_a.slug, detection.public_id]))
    assert response["Location"] == reverse(
        "detection_detail", args=[org_a.slug, detection.public_id]
    )
    assert "Confirm the detection as CSAM before reporting it" in messages_of(
        client, response["Location"]
    )
    assert reports_of(org_a) == []


def test_opening_a_reported_detection_again_goes_to_its_report(
    org_a: Organization, alice: User
) -> None:
    report = open_report(org_a)
    client = login(alice)
    response = client.post(reverse("report_open", args=[org_a.slug, report.detection_ref]))
    assert response["Location"] == detail_url(report)
    assert "is reported already" in messages_of(client, response["Location"])
    assert reports_of(org_a) == [report]


def test_a_viewer_may_not_open_read_or_change_reports(
    org_a: Organization, bob: User, csam_detection: Detection
) -> None:
    report = open_report(org_a)
    client = login(bob)
    assert (
        client.post(reverse("report_open", args=[org_a.slug, csam_detection.public_id])).status_code
        == 403
    )
    assert client.get(reverse("reports", args=[org_a.slug])).status_code == 403
    assert client.get(detail_url(report)).status_code == 403
    assert (
        client.get(reverse("report_download", args=[org_a.slug, report.public_id])).status_code
        == 403
    )
    assert reports_of(org_a) == [report]
    # The sidebar does not offer what the role may not open.
    assert (
        f'href="{reverse("reports", args=[org_a.slug])}"'
        not in client.get(reverse("dashboard", args=[org_a.slug])).content.decode()
    )


def test_another_organisations_report_and_detection_are_404(
    org_a: Organization, org_b: Organization, alice: User, charlie: User
) -> None:
    theirs = open_report(org_b)
    detection_b = confirmed_detection(org_b)
    client = login(alice)
    for name in ("report_detail", "report_download", "report_print"):
        assert client.get(reverse(name, args=[org_a.slug, theirs.public_id])).status_code == 404
    for name in ("report_mark_filed", "report_mark_acknowledged"):
        url = reverse(name, args=[org_a.slug, theirs.public_id])
        assert client.post(url, {"hotline_report_id": "X"}).status_code == 404
    opened = client.post(reverse("report_open", args=[org_a.slug, detection_b.public_id]))
    assert opened.status_code == 404
    assert reports_of(org_a) == []
    # Charlie is no member of org A: its pages are 404 for him, whatever the id.
    mine = open_report(org_a)
    assert login(charlie).get(detail_url(mine)).status_code == 404
    assert refreshed(theirs).state == Report.State.DRAFT


# --- the draft and its states -------------------------------------------------------------------


def test_the_analyst_fills_in_the_draft_and_the_uploader_reference_stays_out_of_the_log(
    org_a: Organization, annie: User
) -> None:
    report = open_report(org_a)
    client = login(annie)
    response = client.post(
        detail_url(report),
        {
            "incident_type": "online_enticement",
            "uploader_ref": "account-77410",
            "notes": "Seen in a group chat.",
            "file_viewed_by_esp": "yes",
        },
    )
    assert response.status_code == 302
    report = refreshed(report)
    assert report.incident_type == "online_enticement"
    assert report.notes == "Seen in a group chat."
    assert report.file_viewed_by_esp is True
    assert report.uploader_ref_token and "account-77410" not in report.uploader_ref_token
    page = client.get(detail_url(report)).content.decode()
    assert 'value="account-77410"' in page  # the analyst sees it in the form
    [line] = audited(org_a, "report.updated")
    assert "account-77410" not in json.dumps(line.metadata)


def test_a_bad_field_is_a_400_with_the_form_and_nothing_changes(
    org_a: Organization, alice: User
) -> None:
    report = open_report(org_a)
    response = login(alice).post(detail_url(report), {"incident_type": "no_such_type"})
    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()
    assert refreshed(report).incident_type == "child_pornography"


def test_a_report_is_marked_filed_then_acknowledged_through_the_pages(
    org_a: Organization, alice: User
) -> None:
    report = open_report(org_a)
    client = login(alice)
    with time_machine.travel(T0, tick=False):
        response = client.post(
            reverse("report_mark_filed", args=[org_a.slug, report.public_id]),
            {"hotline_report_id": "CT-2026-0001", "filed_at": "2026-05-03"},
        )
        assert response.status_code == 302
        report = refreshed(report)
        assert report.state == Report.State.FILED
        assert report.hotline_report_id == "CT-2026-0001"
        assert report.filed_at == dt.datetime(2026, 5, 3, tzinfo=dt.UTC)
        page = client.get(detail_url(report)).content.decode()
        assert "Marked as filed" in page
        assert "held until" in page  # filing placed a preservation hold
        assert "Mark acknowledged" in page
        assert "Only a draft can be changed" in page
        # A filed report's fields no longer change.
        refused = client.post(detail_url(report), {"incident_type": "misleading_words"})
        assert refused.status_code == 409
        assert "only a draft can be changed" in refused.content.decode()
    with time_machine.travel(T0 + dt.timedelta(days=2), tick=False):
        response = client.post(
            reverse("report_mark_acknowledged", args=[org_a.slug, report.public_id]), {}
        )
        assert response.status_code == 302
        report = refreshed(report)
        assert report.state == Report.State.ACKNOWLEDGED
        assert report.acknowledged_at == T0 + dt.timedelta(days=2)
    assert [e.action for e in audited(org_a, "report.filed")] == ["report.filed"]
    assert [e.action for e in audited(org_a, "report.acknowledged")] == ["report.acknowledged"]
    page = client.get(detail_url(report)).content.decode()
    assert "Mark filed" not in page and "Mark acknowledged" not in page


def test_filing_needs_the_hotlines_report_id_and_a_draft_cannot_be_acknowledged(
    org_a: Organization, alice: User
) -> None:
    report = open_report(org_a)
    client = login(alice)
    missing = client.post(reverse("report_mark_filed", args=[org_a.slug, report.public_id]), {})
    assert missing.status_code == 400
    early = client.post(reverse("report_mark_acknowledged", args=[org_a.slug, report.public_id]))
    assert early.status_code == 409
    assert "only a filed report can become acknowledged" in early.content.decode()
    assert refreshed(report).state == Report.State.DRAFT


def test_acknowledged_the_day_it_was_filed_is_accepted(org_a: Organization, alice: User) -> None:
    report = open_report(org_a)
    client = login(alice)
    with time_machine.travel(T0 + dt.timedelta(hours=5), tick=False):
        client.post(
            reverse("report_mark_filed", args=[org_a.slug, report.public_id]),
            {"hotline_report_id": "CT-1"},
        )
    with time_machine.travel(T0 + dt.timedelta(days=3), tick=False):
        response = client.post(
            reverse("report_mark_acknowledged", args=[org_a.slug, report.public_id]),
            {"acknowledged_at": "2026-05-04"},
        )
    assert response.status_code == 302
    assert refreshed(report).acknowledged_at == T0 + dt.timedelta(hours=5)


# --- downloads and print ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("profile", "content_type", "extension"),
    [("ncmec", "application/xml", "xml"), ("generic", "application/json", "json")],
)
def test_each_profile_downloads_as_an_attachment_and_is_audited(
    org_a: Organization, annie: User, profile: str, content_type: str, extension: str
) -> None:
    report = open_report(org_a, uploader_ref="account-5")
    response = login(annie).get(
        reverse("report_download", args=[org_a.slug, report.public_id]), {"profile": profile}
    )
    assert response.status_code == 200
    assert response["Content-Type"].startswith(content_type)
    assert response["Content-Disposition"] == (
        f'attachment; filename="hashhub-report-{report.public_id}.{extension}"'
    )
    assert b"account-5" in response.content  # the package carries what the analyst entered
    [line] = audited(org_a, "report.downloaded")
    assert line.metadata["profile"] == profile
    assert "account-5" not in json.dumps(line.metadata)


def test_the_download_follows_the_organisations_profile_and_refuses_an_unknown_one(
    org_a: Organization, alice: User
) -> None:
    report = open_report(org_a)
    client = login(alice)
    assert (
        client.post(reverse("reports", args=[org_a.slug]), {"profile": "ncmec"}).status_code == 302
    )
    with scopes_disabled():
        assert ReportSettings.objects.get(organization=org_a).profile == "ncmec"
    url = reverse("report_download", args=[org_a.slug, report.public_id])
    assert client.get(url)["Content-Type"].startswith("application/xml")
    refused = client.get(url, {"profile": "carrier-pigeon"})
    assert refused.status_code == 302
    assert "no report profile called" in messages_of(client, refused["Location"])
    assert len(audited(org_a, "report.downloaded")) == 1


def test_the_print_page_is_a_clean_summary_without_the_sidebar(
    org_a: Organization, annie: User
) -> None:
    report = open_report(org_a)
    response = login(annie).get(reverse("report_print", args=[org_a.slug, report.public_id]))
    page = response.content.decode()
    assert response.status_code == 200
    assert 'class="sidebar"' not in page
    assert "print.css" in page
    assert report.public_id in page
    assert "upload-1" in page  # the content_ref to preserve
    [line] = audited(org_a, "report.downloaded")
    assert line.metadata["profile"] == "print"


# --- the index and the profile ------------------------------------------------------------------


def test_the_index_lists_the_reports_by_state(org_a: Organization, annie: User) -> None:
    draft = open_report(org_a)
    filed = open_report(org_a)
    client = login(annie)
    client.post(
        reverse("report_mark_filed", args=[org_a.slug, filed.public_id]),
        {"hotline_report_id": "CT-9"},
    )
    url = reverse("reports", args=[org_a.slug])
    everything = client.get(url).content.decode()
    assert draft.public_id in everything and filed.public_id in everything
    only_filed = client.get(url, {"state": "filed"}).content.decode()
    assert filed.public_id in only_filed and draft.public_id not in only_filed
    assert "CT-9" in only_filed
    assert client.get(url, {"state": "lost"}).status_code == 400
    # The analyst sees the profile but may not change it.
    assert "Only owners and admins may change it" in everything
    assert client.post(url, {"profile": "ncmec"}).status_code == 403
    # The sidebar links here for those who may read reports.
    assert re.search(rf'href="{url}"\s+aria-current="page">Reports<', everything)


def test_an_unknown_profile_is_refused_in_the_settings_form(
    org_a: Organization, alice: User
) -> None:
    response = login(alice).post(reverse("reports", args=[org_a.slug]), {"profile": "fax"})
    assert response.status_code == 400
    with scopes_disabled():
        assert not ReportSettings.objects.filter(organization=org_a).exists()
