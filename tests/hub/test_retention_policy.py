"""What the audit log may carry (issue 21, hub.retention): the audit log outlives every detection,
so an event never keeps a platform's ``content_ref``, only a keyed digest of it; an uploader
reference is refused outright. Migration hub/0009 rewrote the events written before the rule,
and matching/0009 gave confirmed detections the category of their confirmation.

Org A matches with a content_ref; every hash is random.
"""

from __future__ import annotations

import importlib
import json
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import DatabaseError, connection, transaction
from django.db.migrations.loader import MigrationLoader
from django.test import Client, override_settings
from django_scopes import scopes_disabled

from hub import retention
from hub.audit import SYSTEM, audit
from hub.models import AuditEvent, Organization
from matching.models import Detection
from tests.matching.test_match_api import add, match, own_list
from tests.matching.test_review import make_detection

pytestmark = pytest.mark.django_db

REF = "platform/clip-8841?user=4471"


def test_a_detection_created_event_carries_the_digest_and_never_the_content_ref(
    api_a: Client, org_a: Organization
) -> None:
    md5 = secrets.token_hex(16)
    add(own_list(org_a), ("md5", md5))
    body = match(api_a, [{"type": "md5", "value": md5}], content_ref=REF).json()
    with scopes_disabled():
        event = AuditEvent.objects.get(action="detection.created", target_id=body["detection"])
        assert Detection.objects.get(public_id=body["detection"]).content_ref == REF
    assert event.metadata["content_ref_digest"] == retention.audit_digest(REF)
    text = json.dumps(event.metadata)
    assert 'content_ref"' not in text and '"content_ref":' not in text
    assert REF not in text and "clip-8841" not in text and "4471" not in text
    # The whole table, not just this event: no event names the reference anywhere.
    with scopes_disabled():
        assert not AuditEvent.objects.filter(metadata__icontains="clip-8841").exists()


def test_the_digest_is_stable_keyed_and_says_nothing_of_the_reference() -> None:
    digest = retention.audit_digest(REF)
    assert digest == retention.audit_digest(REF)
    assert len(digest) == 32 and int(digest, 16) >= 0
    assert digest != retention.audit_digest(REF + " ")
    assert REF not in digest
    with override_settings(SECRET_KEY="another hub's key " + "x" * 40):
        assert retention.audit_digest(REF) != digest


def test_content_refs_are_digested_at_any_depth_and_empty_ones_stay_empty() -> None:
    cleaned = retention.audit_metadata(
        {"content_ref": REF, "items": [{"content_ref": ""}, {"nested": {"content_ref": "b"}}]}
    )
    assert cleaned == {
        "content_ref_digest": retention.audit_digest(REF),
        "items": [
            {"content_ref_digest": ""},
            {"nested": {"content_ref_digest": retention.audit_digest("b")}},
        ],
    }


@pytest.mark.parametrize(
    "metadata",
    [
        {"uploader_ref": "user-4471"},
        {"uploader": "user-4471"},
        {"report": {"fields": [{"uploader_ref": "user-4471"}]}},
    ],
)
def test_an_uploader_reference_is_refused_and_nothing_is_written(
    org_a: Organization, metadata: dict[str, Any]
) -> None:
    with scopes_disabled():
        before = AuditEvent.objects.count()
    with pytest.raises(ValueError, match="may not carry"):
        audit(actor=SYSTEM, action="report.updated", organization=org_a, metadata=metadata)
    with scopes_disabled():
        assert AuditEvent.objects.count() == before


# --- the migrations ------------------------------------------------------------------------------


def _state_apps(app_label: str, migration_name: str) -> Any:
    """The models as the migration sees them (plain managers: the real AuditEvent's refuses
    every update, as it should)."""
    return MigrationLoader(connection).project_state((app_label, migration_name)).apps


def _old_style_event(org: Organization, metadata: dict[str, Any]) -> int:
    """An event as written before hub.retention: past hub.audit's cleaning and the append-only
    trigger, lifted the way the migration itself lifts it."""
    event = AuditEvent.objects.create(
        organization=org, actor_type="system", actor_label="system", action="detection.created"
    )
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE hub_auditevent DISABLE TRIGGER hub_auditevent_append_only")
        cursor.execute(
            "UPDATE hub_auditevent SET metadata = %s::jsonb WHERE id = %s",
            [json.dumps(metadata), event.pk],
        )
        cursor.execute("ALTER TABLE hub_auditevent ENABLE TRIGGER hub_auditevent_append_only")
    return event.pk


@pytest.fixture
def _checks_at_once() -> Iterator[None]:
    """Foreign-key checks at each statement's end, not the test transaction's: PostgreSQL alters
    no table with trigger events pending, and rows this transaction inserted queue them. (A real
    migration runs in a transaction of its own, over rows committed long before.)"""
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    yield
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")


@pytest.mark.usefixtures("_checks_at_once")
def test_migration_0009_rewrites_old_events_to_the_digest(org_a: Organization) -> None:
    migration = importlib.import_module("hub.migrations.0009_audit_content_ref_digest")
    with scopes_disabled():
        old = _old_style_event(org_a, {"content_ref": REF, "match_total": 3})
        empty = _old_style_event(org_a, {"content_ref": ""})
        untouched = _old_style_event(org_a, {"match_total": 1})
        assert AuditEvent.objects.get(pk=old).metadata["content_ref"] == REF
        with connection.schema_editor() as editor:
            migration.forwards(_state_apps("hub", "0009_audit_content_ref_digest"), editor)
        rows = {e.pk: e.metadata for e in AuditEvent.objects.filter(pk__in=[old, empty, untouched])}
    assert rows[old] == {"content_ref_digest": retention.audit_digest(REF), "match_total": 3}
    assert rows[empty] == {"content_ref_digest": ""}
    assert rows[untouched] == {"match_total": 1}
    # The digest is the one hub.retention writes today, so old and new events are found alike.
    assert migration.SALT == retention.AUDIT_DIGEST_SALT
    # The trigger is back: the log is append-only again.
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("UPDATE hub_auditevent SET metadata = '{}' WHERE id = %s", [old])


def test_migration_matching_0009_backfills_the_confirmed_category(org_a: Organization) -> None:
    migration = importlib.import_module("matching.migrations.0009_preservation_holds")
    as_se = make_detection(org_a, status=Detection.Status.CONFIRMED)
    reconfirmed = make_detection(org_a, status=Detection.Status.CONFIRMED)
    dismissed = make_detection(org_a, status=Detection.Status.DISMISSED)
    for detection, category in ((as_se, "se"), (reconfirmed, "se"), (reconfirmed, "csam")):
        audit(
            actor=SYSTEM,
            action="detection.confirmed",
            organization=org_a,
            target_type="detection",
            target_id=detection.public_id,
            metadata={"category": category},
        )
    audit(
        actor=SYSTEM,
        action="detection.confirmed",
        organization=org_a,
        target_type="detection",
        target_id=dismissed.public_id,
        metadata={"category": "csam"},
    )
    with connection.schema_editor() as editor:
        migration.confirmed_categories(_state_apps("matching", "0009_preservation_holds"), editor)
    with scopes_disabled():
        found = dict(
            Detection.objects.filter(organization=org_a).values_list(
                "public_id", "confirmed_category"
            )
        )
    assert found == {as_se.public_id: "se", reconfirmed.public_id: "csam", dismissed.public_id: ""}


# --- shown to the organisation -------------------------------------------------------------------


def test_the_settings_page_shows_the_retention_policy(alice_client: Client, settings: Any) -> None:
    settings.HASHHUB_WEBHOOK_DELIVERY_RETENTION_DAYS = 21
    settings.HASHHUB_PRESERVATION_HOLD_DAYS = 500
    page = alice_client.get("/o/org-a/settings/").content.decode()
    section = page.split('id="retention"')[1].split("</section>")[0]
    for period in retention.policy():
        assert period.record.capitalize() in section
    assert "21 days" in section and "500 days" in section
    assert "HASHHUB_WEBHOOK_DELIVERY_RETENTION_DAYS" in section
