"""Reports as records (issue 21): open from a detection confirmed as CSAM (never SE), edit the
draft, file, acknowledge; each change audited and sent as a webhook event; the uploader reference
encrypted at rest and never audited or sent; the retention purge that spares held reports.

Org A (approved) reports; org B must find nothing of A. Every hash is random.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import time_machine
from cryptography.fernet import Fernet
from django.db import connection
from django_scopes import scope, scopes_disabled

from hub.audit import Actor
from hub.errors import ServiceError
from hub.lib import secretbox
from hub.models import AuditEvent, Organization, User
from lists import services as list_services
from lists.models import Entry, HashList
from lists.sources import services as source_services
from matching import review, webhooks
from matching.models import Detection, PreservationHold
from reports import listings, selectors, services
from reports.models import Report, ReportedEntry, ReportListing
from tests.reports.conftest import TEST, confirmed_detection, open_report

pytestmark = pytest.mark.django_db

UPLOADER = "uploader-7731@platform.example"
NOTES = "Seen by the trust team on the second review."
START = dt.datetime(2026, 3, 18, 16, 30, tzinfo=dt.UTC)


def audit_of(org: Organization, action: str) -> list[AuditEvent]:
    with scopes_disabled():
        return list(AuditEvent.objects.filter(organization=org, action=action).order_by("id"))


def refused(call: Callable[[], object], code: str, status: int = 400) -> ServiceError:
    with pytest.raises(ServiceError) as raised:
        call()
    assert (raised.value.code, raised.value.status) == (code, status), raised.value.message
    return raised.value


def in_scope(org: Organization, call: Callable[[], Any]) -> Any:
    with scope(organization=org.pk):
        return call()


def reload(report: Report) -> Report:
    with scopes_disabled():
        return Report.objects.get(pk=report.pk)


# --- opening ------------------------------------------------------------------------------------


def test_opening_copies_the_detection_and_links_the_own_csam_entries(
    org_a: Organization, alice: User, csam_detection: Detection
) -> None:
    actor = Actor(user=alice)
    report = in_scope(
        org_a,
        lambda: services.report_open(
            detection=csam_detection,
            actor=actor,
            incident_type="online_enticement",
            uploader_ref=UPLOADER,
            notes=NOTES,
            file_viewed_by_esp=True,
        ),
    )

    assert report.state == "draft"
    assert (report.incident_type, report.notes, report.file_viewed_by_esp) == (
        "online_enticement",
        NOTES,
        True,
    )
    assert report.detection_ref == csam_detection.public_id
    assert report.content_ref == "upload-1"
    package = report.package
    assert package["image_held"] is False
    assert "upload-1" in package["preserve"]
    assert package["detection"]["id"] == csam_detection.public_id
    assert package["detection"]["submitted"] == csam_detection.submitted
    assert package["detection"]["matches"] == csam_detection.matches
    assert package["detection"]["matches"][0]["matches"][0]["record_id"] == "rec-1"
    assert package["confirmation"]["category"] == "csam"
    assert csam_detection.reviewed_at is not None
    assert package["confirmation"]["confirmed_at"] == csam_detection.reviewed_at.isoformat()
    assert package["opened_by"] == "alice@example.test"
    with scope(organization=org_a.pk):
        own = HashList.objects.get(organization=org_a, category="csam", is_default=True)
        linked = list(ReportedEntry.objects.filter(report=report).select_related("entry"))
        assert sorted(row.entry.hash_list_id for row in linked) == [own.pk, own.pk]
        submitted = {item["value"] for item in csam_detection.submitted}
        assert {row.value for row in listings.reported_entries_of(report=report)} == submitted
    [event] = audit_of(org_a, "report.opened")
    assert (event.target_type, event.target_id) == ("report", report.public_id)
    assert event.metadata["uploader_ref_set"] is True
    assert event.metadata["entries"] == 2
    assert event.metadata["detection"] == csam_detection.public_id


def test_a_detection_confirmed_as_se_is_refused_with_the_reason(
    org_a: Organization, se_detection: Detection
) -> None:
    error = in_scope(
        org_a,
        lambda: refused(
            lambda: services.report_open(detection=se_detection, actor=TEST),
            "confirmed_as_se",
            409,
        ),
    )
    assert "not reported to NCMEC or a hotline" in error.message
    assert "SE list" in error.message
    with scopes_disabled():
        assert not Report.objects.exists()
    assert audit_of(org_a, "report.opened") == []


@pytest.mark.parametrize("status", ["new", "dismissed", "false_positive"])
def test_a_detection_not_confirmed_is_refused(org_a: Organization, status: str) -> None:
    with scope(organization=org_a.pk):
        detection = Detection.objects.create(
            organization=org_a,
            source_label="test",
            submitted=[{"type": "md5", "value": secrets.token_hex(16)}],
            tiers=["own"],
            categories=["csam"],
            status=status,
        )
        error = refused(
            lambda: services.report_open(detection=detection, actor=TEST), "not_confirmed", 409
        )
    assert error.message == "Confirm the detection as CSAM before reporting it."


def test_a_detection_is_reported_once(org_a: Organization, csam_detection: Detection) -> None:
    with scope(organization=org_a.pk):
        first = services.report_open(detection=csam_detection, actor=TEST)
        error = refused(
            lambda: services.report_open(detection=csam_detection, actor=TEST),
            "already_reported",
            409,
        )
    assert error.details == {"report": first.public_id}


def test_a_shadow_detection_confirmed_as_csam_can_be_reported(org_a: Organization) -> None:
    detection = confirmed_detection(org_a)
    with scope(organization=org_a.pk):
        Detection.objects.filter(pk=detection.pk).update(shadow=True)
        detection.refresh_from_db()
        report = services.report_open(detection=detection, actor=TEST)
    assert report.package["detection"]["shadow"] is True


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"incident_type": "something_else"}, "invalid_incident_type"),
        ({"notes": "x" * 5001}, "notes_too_long"),
        ({"notes": 5}, "invalid_notes"),
        ({"uploader_ref": "u" * 501}, "uploader_ref_too_long"),
        ({"file_viewed_by_esp": "yes"}, "invalid_file_viewed_by_esp"),
    ],
)
def test_bad_fields_are_refused_with_a_code(
    org_a: Organization, csam_detection: Detection, fields: dict[str, Any], code: str
) -> None:
    with scope(organization=org_a.pk):
        refused(lambda: services.report_open(detection=csam_detection, actor=TEST, **fields), code)
        assert not Report.objects.exists()


def test_the_longest_allowed_fields_are_kept(org_a: Organization) -> None:
    report = open_report(org_a, notes="n" * 5000, uploader_ref="u" * 500)
    assert len(report.notes) == 5000
    assert in_scope(org_a, lambda: services.uploader_ref_of(report=report)) == "u" * 500


# --- verified listings known at opening -------------------------------------------------------


def _source_listing(value: str, *, access: str) -> HashList:
    with scopes_disabled():
        source = source_services.source_create(
            name=f"Feed {secrets.token_hex(3)}", kind="feed", config={}, access=access, actor=TEST
        )
        source_list = source_services.source_lists(source)["csam"]
        list_services.entry_add(
            hash_list=source_list, items=[list_services.EntryInput("pdq", value)], actor=TEST
        )
        return source_list


def test_a_hash_a_verified_source_already_lists_is_recorded_as_listed_before_the_report(
    org_a: Organization, csam_detection: Detection
) -> None:
    pdq = csam_detection.submitted[0]["value"]
    open_to_all = _source_listing(pdq, access="all")
    granted_to_nobody = _source_listing(pdq, access="granted")

    report = in_scope(org_a, lambda: services.report_open(detection=csam_detection, actor=TEST))

    with scopes_disabled():
        [listing] = ReportListing.objects.filter(reported_entry__report=report)
        source_entry = Entry.objects.get(hash_list=open_to_all, removed_seq__isnull=True)
    assert listing.hash_list_id == open_to_all.pk != granted_to_nobody.pk
    assert listing.before_report is True
    assert listing.listed_at == source_entry.added_at
    with scope(organization=org_a.pk):
        shown = {e.value: e.listed for e in listings.reported_entries_of(report=report)}
    assert [(x.list_id, x.before_report) for x in shown[pdq]] == [(open_to_all.public_id, True)]
    assert audit_of(org_a, "report.opened")[0].metadata["listed_before"] == 1


# --- the uploader reference -------------------------------------------------------------------


def test_the_uploader_reference_is_encrypted_at_rest_and_never_audited(
    org_a: Organization, csam_detection: Detection
) -> None:
    report = in_scope(
        org_a,
        lambda: services.report_open(detection=csam_detection, actor=TEST, uploader_ref=UPLOADER),
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT uploader_ref_token, package::text FROM {Report._meta.db_table}"  # noqa: S608
            " WHERE id = %s",
            [report.pk],
        )
        token, package = cursor.fetchone()
    assert UPLOADER not in token and UPLOADER not in package
    assert secretbox.decrypt(token) == UPLOADER
    in_scope(org_a, lambda: services.report_update(report=report, actor=TEST, uploader_ref="u-2"))
    with scopes_disabled():
        events = list(AuditEvent.objects.filter(organization=org_a))
    assert events
    for event in events:
        said = json.dumps(event.metadata)
        assert UPLOADER not in said and "u-2" not in said
        assert "uploader_ref" not in event.metadata
    [updated] = audit_of(org_a, "report.updated")
    assert updated.metadata["fields"] == ["uploader_ref"]


def test_the_uploader_reference_decrypts_after_a_key_rotation(
    org_a: Organization, settings: Any
) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.HASHHUB_CREDENTIAL_KEYS = [old]
    report = open_report(org_a, uploader_ref=UPLOADER)
    settings.HASHHUB_CREDENTIAL_KEYS = [new, old]  # the new key first, the old one still there
    assert in_scope(org_a, lambda: services.uploader_ref_of(report=reload(report))) == UPLOADER
    rotated = secretbox.rotate(reload(report).uploader_ref_token)
    settings.HASHHUB_CREDENTIAL_KEYS = [new]
    assert secretbox.decrypt(rotated) == UPLOADER
    refused(lambda: services.uploader_ref_of(report=reload(report)), "encryption_unavailable", 503)


def test_without_a_key_an_uploader_reference_is_refused_and_nothing_is_stored(
    org_a: Organization, csam_detection: Detection, settings: Any
) -> None:
    settings.HASHHUB_CREDENTIAL_KEYS = []
    with scope(organization=org_a.pk):
        refused(
            lambda: services.report_open(
                detection=csam_detection, actor=TEST, uploader_ref=UPLOADER
            ),
            "encryption_unavailable",
            503,
        )
        # Without an uploader reference, nothing needs the key.
        report = services.report_open(detection=csam_detection, actor=TEST)
    assert report.uploader_ref_token == ""


# --- editing the draft --------------------------------------------------------------------------


def test_a_draft_is_edited_and_the_audit_names_the_fields_changed(org_a: Organization) -> None:
    report = open_report(org_a, notes="first")
    with scope(organization=org_a.pk):
        services.report_update(
            report=report,
            actor=TEST,
            notes="second",
            file_viewed_by_esp=False,
            incident_type="child_pornography",  # unchanged: not named
        )
    changed = reload(report)
    assert (changed.notes, changed.file_viewed_by_esp) == ("second", False)
    [event] = audit_of(org_a, "report.updated")
    assert event.metadata["fields"] == ["file_viewed_by_esp", "notes"]


def test_an_edit_that_changes_nothing_writes_no_event(org_a: Organization) -> None:
    report = open_report(org_a, notes="same")
    in_scope(org_a, lambda: services.report_update(report=report, actor=TEST, notes="same"))
    assert audit_of(org_a, "report.updated") == []


def test_only_known_fields_of_a_draft_change(org_a: Organization) -> None:
    report = open_report(org_a)
    error = in_scope(
        org_a,
        lambda: refused(
            lambda: services.report_update(report=report, actor=TEST, state="filed"),
            "unknown_field",
        ),
    )
    assert error.details == {"fields": ["state"]}


def test_a_filed_report_is_no_longer_edited(org_a: Organization) -> None:
    report = open_report(org_a)
    with scope(organization=org_a.pk):
        services.report_file(report=report, actor=TEST, hotline_report_id="CT-1")
        error = refused(
            lambda: services.report_update(report=report, actor=TEST, notes="late"),
            "report_not_draft",
            409,
        )
    assert "filed" in error.message


# --- filing and acknowledging -----------------------------------------------------------------


@pytest.mark.clock
def test_filing_records_the_hotline_id_holds_the_detection_and_is_audited(
    org_a: Organization, settings: Any
) -> None:
    settings.HASHHUB_PRESERVATION_HOLD_DAYS = 365
    report = open_report(org_a)
    with scope(organization=org_a.pk):
        filed = services.report_file(report=report, actor=TEST, hotline_report_id=" CT-12345 ")
        hold = services.report_hold(report=filed)
    assert (filed.state, filed.hotline_report_id) == ("filed", "CT-12345")
    assert filed.filed_at is not None
    assert hold is not None and hold.report_ref == report.public_id
    assert hold.until - hold.placed_at == dt.timedelta(days=365)
    [event] = audit_of(org_a, "report.filed")
    assert event.metadata["hotline_report_id"] == "CT-12345"
    assert event.metadata["hold"] == hold.public_id
    assert [e.metadata["report"] for e in audit_of(org_a, "preservation.held")] == [
        report.public_id
    ]


def test_a_filing_date_in_the_past_is_kept_and_one_in_the_future_refused(
    org_a: Organization,
) -> None:
    with time_machine.travel(START, tick=False):
        report = open_report(org_a)
        with scope(organization=org_a.pk):
            refused(
                lambda: services.report_file(
                    report=report,
                    actor=TEST,
                    hotline_report_id="CT-1",
                    filed_at=START + dt.timedelta(minutes=1),
                ),
                "filed_at_in_future",
            )
            filed = services.report_file(
                report=report,
                actor=TEST,
                hotline_report_id="CT-1",
                filed_at=START - dt.timedelta(days=2),
            )
    assert filed.filed_at == START - dt.timedelta(days=2)


@pytest.mark.parametrize("hotline_id", ["", "   ", "x" * 101, "CT\n1", None])
def test_a_hotline_id_is_required_and_printable(
    org_a: Organization, hotline_id: str | None
) -> None:
    report = open_report(org_a)
    with scope(organization=org_a.pk):
        refused(
            lambda: services.report_file(
                report=report,
                actor=TEST,
                hotline_report_id=hotline_id,  # type: ignore[arg-type]
            ),
            "invalid_hotline_report_id",
        )
    assert reload(report).state == "draft"


def test_acknowledging_follows_filing_and_is_audited(org_a: Organization) -> None:
    report = open_report(org_a)
    with scope(organization=org_a.pk):
        error = refused(
            lambda: services.report_acknowledge(report=report, actor=TEST),
            "invalid_transition",
            409,
        )
        assert error.message == (
            "This report is draft; only a filed report can become acknowledged."
        )
        services.report_file(report=report, actor=TEST, hotline_report_id="CT-7")
        acknowledged = services.report_acknowledge(report=report, actor=TEST)
        again = refused(
            lambda: services.report_file(report=report, actor=TEST, hotline_report_id="CT-8"),
            "invalid_transition",
            409,
        )
    assert "acknowledged" in again.message
    assert acknowledged.state == "acknowledged" and acknowledged.acknowledged_at is not None
    assert len(audit_of(org_a, "report.acknowledged")) == 1


def test_an_acknowledgement_cannot_precede_the_filing(org_a: Organization) -> None:
    with time_machine.travel(START, tick=False):
        report = open_report(org_a)
        with scope(organization=org_a.pk):
            services.report_file(report=report, actor=TEST, hotline_report_id="CT-7")
            refused(
                lambda: services.report_acknowledge(
                    report=report, actor=TEST, acknowledged_at=START - dt.timedelta(hours=1)
                ),
                "acknowledged_before_filing",
            )


def test_filing_a_report_whose_detection_was_purged_places_no_hold(org_a: Organization) -> None:
    report = open_report(org_a)
    with scopes_disabled():
        Detection.objects.filter(public_id=report.detection_ref).delete()
    with scope(organization=org_a.pk):
        filed = services.report_file(report=reload(report), actor=TEST, hotline_report_id="CT-9")
    assert filed.state == "filed"
    assert audit_of(org_a, "report.filed")[0].metadata["hold"] is None


# --- webhook events ---------------------------------------------------------------------------


def _endpoint(org: Organization, url: str) -> Any:
    with scope(organization=org.pk):
        return webhooks.webhook_create(org=org, url=url, description="t", actor=TEST)


def test_every_state_change_queues_its_event_with_the_report_and_no_personal_data(
    org_a: Organization,
    org_b: Organization,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    endpoint, _ = _endpoint(org_a, "https://8.8.8.8/hook")
    _endpoint(org_b, "https://1.1.1.1/other-org")
    detection = confirmed_detection(org_a)
    with scope(organization=org_a.pk), django_capture_on_commit_callbacks() as callbacks:
        report = services.report_open(
            detection=detection, actor=TEST, uploader_ref=UPLOADER, notes=NOTES
        )
        services.report_file(report=report, actor=TEST, hotline_report_id="CT-3")
        services.report_acknowledge(report=report, actor=TEST)
    sent = [c.keywords["kwargs"] for c in callbacks if "kwargs" in getattr(c, "keywords", {})]
    assert [k["event"] for k in sent] == ["report.opened", "report.filed", "report.acknowledged"]
    for kwargs in sent:
        assert kwargs["endpoint_id"] == endpoint.pk
        assert kwargs["organization_id"] == org_a.pk
        assert kwargs["detection_id"] == detection.pk
        said = json.dumps(kwargs)
        assert UPLOADER not in said and NOTES not in said
        assert set(kwargs["data"]) == {
            "id",
            "state",
            "detection",
            "incident_type",
            "hotline_report_id",
            "filed_at",
            "acknowledged_at",
            "created",
        }
    assert [k["data"]["state"] for k in sent] == ["draft", "filed", "acknowledged"]
    assert sent[1]["data"]["hotline_report_id"] == "CT-3"


class _Receiver:
    def __init__(self) -> None:
        self.bodies: list[tuple[dict[str, str], bytes]] = []


@pytest.fixture
def receiver(settings: Any) -> Iterator[tuple[str, _Receiver]]:
    """A real HTTP receiver on 127.0.0.1 (allowed for the test, as an operator would)."""
    settings.HASHHUB_WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    got = _Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            got.bodies.append((dict(self.headers.items()), body))
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", got
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _deliver(kwargs: dict[str, Any]) -> bool:
    with scope(organization=kwargs["organization_id"]):
        return webhooks.webhook_attempt(
            endpoint_id=kwargs["endpoint_id"],
            detection_id=kwargs["detection_id"],
            event=kwargs["event"],
            event_id=kwargs["event_id"],
            attempt=1,
            data=kwargs.get("data"),
            occurred_at=kwargs.get("occurred_at"),
        )


def test_a_report_event_is_delivered_signed_with_the_report_section(
    org_a: Organization,
    receiver: tuple[str, _Receiver],
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    url, got = receiver
    _endpoint_row, secret = _endpoint(org_a, url)
    detection = confirmed_detection(org_a)
    with (
        time_machine.travel(START, tick=False),
        scope(organization=org_a.pk),
        django_capture_on_commit_callbacks(execute=False) as callbacks,
    ):
        report = services.report_open(
            detection=detection, actor=TEST, uploader_ref=UPLOADER, notes=NOTES
        )
        services.report_file(report=report, actor=TEST, hotline_report_id="CT-5")
    [opened, filed] = [c.keywords["kwargs"] for c in callbacks if hasattr(c, "keywords")]
    assert _deliver(filed) is True
    # The detection may be purged before an event goes: a report's event goes all the same.
    with scopes_disabled():
        Detection.objects.filter(pk=detection.pk).delete()
    assert _deliver(opened) is True

    (headers, body), (_, body_without_detection) = got.bodies
    assert webhooks.webhook_signature_verify(
        secret, headers["X-HashHub-Timestamp"], body, headers["X-HashHub-Signature"]
    )
    assert headers["X-HashHub-Event"] == "report.filed"
    payload = json.loads(body)
    assert payload["event"] == "report.filed"
    assert payload["created"] == START.isoformat()
    assert payload["report"]["id"] == report.public_id
    assert payload["report"]["state"] == "filed"
    assert payload["report"]["hotline_report_id"] == "CT-5"
    assert payload["report"]["detection"] == detection.public_id
    assert payload["detection"]["id"] == detection.public_id
    for raw in (body, body_without_detection):
        text = raw.decode()
        assert UPLOADER not in text and NOTES not in text and "uploader" not in text
    later = json.loads(body_without_detection)
    assert later["event"] == "report.opened" and "detection" not in later
    assert later["report"]["state"] == "draft"


def test_a_higher_app_may_not_use_a_section_the_payload_owns(org_a: Organization) -> None:
    for event in ("detection.filed", "review.x", "report", "report."):
        with pytest.raises(ValueError):
            webhooks.event_notify(organization_id=org_a.pk, detection_id=None, event=event, data={})


# --- retention --------------------------------------------------------------------------------


def test_the_purge_deletes_old_reports_and_keeps_held_ones(
    org_a: Organization, settings: Any
) -> None:
    settings.HASHHUB_REPORT_RETENTION_DAYS = 30
    settings.HASHHUB_PRESERVATION_HOLD_DAYS = 365
    with time_machine.travel(START, tick=False):
        draft = open_report(org_a)
        filed = open_report(org_a)
        in_scope(
            org_a,
            lambda: services.report_file(report=filed, actor=TEST, hotline_report_id="CT-1"),
        )
    with time_machine.travel(START + dt.timedelta(days=29), tick=False):
        assert services.reports_purge() == 0
    with time_machine.travel(START + dt.timedelta(days=31), tick=False):
        assert services.reports_purge() == 1
    with scopes_disabled():
        assert list(Report.objects.values_list("public_id", flat=True)) == [filed.public_id]
        assert not ReportedEntry.objects.filter(report_id=draft.pk).exists()
    [event] = audit_of(org_a, "reports.purged")
    assert event.actor_type == "system"
    assert (event.metadata["purged"], event.metadata["retention_days"]) == (1, 30)
    # Once the hold ends, the filed report goes too.
    with time_machine.travel(START + dt.timedelta(days=366), tick=False):
        assert services.reports_purge() == 1
    with scopes_disabled():
        assert not Report.objects.exists()
        assert PreservationHold.objects.count() == 1  # the hold itself is matching's record


def test_the_purge_task_is_scheduled_daily(settings: Any) -> None:
    from reports import tasks

    entry = settings.CELERY_BEAT_SCHEDULE["purge-old-reports"]
    assert entry["task"] == tasks.purge_reports.name == "reports.purge_reports"


# --- selectors ----------------------------------------------------------------------------------


def test_another_orgs_report_is_the_same_404_as_a_missing_one(
    org_a: Organization, org_b: Organization
) -> None:
    from django.http import Http404

    report = open_report(org_a)
    with scope(organization=org_b.pk):
        for public_id in (report.public_id, "missing"):
            with pytest.raises(Http404):
                selectors.get_report_for_org(org=org_b, public_id=public_id)
        assert list(selectors.reports_of(org=org_b)) == []
    with scope(organization=org_a.pk):
        assert selectors.get_report_for_org(org=org_a, public_id=report.public_id) == report
        found = selectors.report_for_detection(
            detection=review.get_detection_for_org(org=org_a, public_id=report.detection_ref)
        )
        assert found == report


def test_pages_of_reports_follow_the_cursor_and_the_state(org_a: Organization) -> None:
    made = []
    for minutes in range(3):
        with time_machine.travel(START + dt.timedelta(minutes=minutes), tick=False):
            made.append(open_report(org_a))
    with scope(organization=org_a.pk):
        services.report_file(report=made[0], actor=TEST, hotline_report_id="CT-0")
        first = selectors.reports_page(org=org_a, limit=2)
        assert first.next_cursor is not None
        second = selectors.reports_page(org=org_a, limit=2, cursor=first.next_cursor)
        filed = selectors.reports_page(org=org_a, state="filed")
        refused(lambda: selectors.reports_page(org=org_a, cursor="nonsense"), "bad_cursor")
    assert [r.public_id for r in first.reports + second.reports] == [
        r.public_id for r in reversed(made)
    ]
    assert second.next_cursor is None
    assert [r.public_id for r in filed.reports] == [made[0].public_id]


# --- the organisation's profile -----------------------------------------------------------------


def test_the_profile_defaults_to_generic_and_is_set_and_audited(org_a: Organization) -> None:
    with scope(organization=org_a.pk):
        assert services.report_settings_of(org=org_a).profile == "generic"
        services.report_settings_set(org=org_a, profile="ncmec", actor=TEST)
        assert services.report_settings_of(org=org_a).profile == "ncmec"
        refused(
            lambda: services.report_settings_set(org=org_a, profile="bogus", actor=TEST),
            "unknown_profile",
        )
    [event] = audit_of(org_a, "report.profile_set")
    assert event.metadata == {"profile": "ncmec", "previous": "generic"}


# --- a filed report keeps its detection's confirmation ------------------------------------------


def test_a_filed_reports_detection_cannot_be_reviewed_otherwise(org_a: Organization) -> None:
    report = open_report(org_a)
    with scope(organization=org_a.pk):
        services.report_file(report=report, actor=TEST, hotline_report_id="CT-9")
        detection = Detection.objects.get(pk=report.detection_id or 0)
        for undo in (
            lambda: review.detection_mark_false_positive(detection=detection, actor=TEST),
            lambda: review.detection_dismiss(detection=detection, actor=TEST),
            lambda: review.detection_confirm(detection=detection, category="se", actor=TEST),
        ):
            error = refused(undo, "reported", 409)
            assert report.public_id in error.message
        # Confirming it as CSAM again changes nothing it rests on.
        review.detection_confirm(detection=detection, category="csam", actor=TEST)
        detection.refresh_from_db()
    assert (detection.status, detection.confirmed_category) == ("confirmed", "csam")


def test_a_draft_whose_detection_was_reviewed_again_is_filed_only_once_confirmed_again(
    org_a: Organization,
) -> None:
    report = open_report(org_a)
    with scope(organization=org_a.pk):
        detection = Detection.objects.get(pk=report.detection_id or 0)
        review.detection_dismiss(detection=detection, actor=TEST)  # a draft does not stop it
        refused(
            lambda: services.report_file(report=report, actor=TEST, hotline_report_id="CT-10"),
            "no_longer_confirmed",
            409,
        )
        assert reload(report).state == "draft"
        review.detection_confirm(detection=detection, category="csam", actor=TEST)
        filed = services.report_file(report=report, actor=TEST, hotline_report_id="CT-10")
    assert filed.state == "filed"
