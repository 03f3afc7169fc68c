from __future__ import annotations

import pytest
from django.db import DatabaseError, connection, transaction
from django.test import Client
from django_scopes import scope, scopes_disabled

from hub.audit import SYSTEM, audit
from hub.models import AuditEvent, Organization

pytestmark = pytest.mark.django_db


@pytest.fixture
def event(org_a: Organization) -> AuditEvent:
    return audit(actor=SYSTEM, action="test.happened", organization=org_a, metadata={"n": 1})


def test_the_orm_refuses_to_update_an_audit_row(event: AuditEvent) -> None:
    event.action = "test.rewritten"
    with pytest.raises(PermissionError, match="append-only"):
        event.save()
    with scopes_disabled(), pytest.raises(PermissionError, match="append-only"):
        AuditEvent.objects.filter(pk=event.pk).update(action="test.rewritten")


def test_the_orm_refuses_to_delete_an_audit_row(event: AuditEvent) -> None:
    with pytest.raises(PermissionError, match="append-only"):
        event.delete()
    with scopes_disabled(), pytest.raises(PermissionError, match="append-only"):
        AuditEvent.objects.filter(pk=event.pk).delete()


def test_the_database_refuses_raw_update_and_delete_too(event: AuditEvent) -> None:
    for sql in (
        "UPDATE hub_auditevent SET action = 'forged' WHERE id = %s",
        "DELETE FROM hub_auditevent WHERE id = %s",
    ):
        with (
            pytest.raises(DatabaseError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(sql, [event.pk])
    with scopes_disabled():
        assert AuditEvent.objects.get(pk=event.pk).action == "test.happened"


def test_audit_rows_are_scoped_to_their_organisation(
    event: AuditEvent, org_b: Organization
) -> None:
    audit(actor=SYSTEM, action="test.other_org", organization=org_b)
    with scope(organization=org_b.pk):
        actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert "test.other_org" in actions
    assert "test.happened" not in actions


def test_services_record_who_did_what_from_where(alice_client: Client, org_a: Organization) -> None:
    alice_client.post(
        "/o/org-a/members/",
        {"email": "new@example.test", "role": "analyst"},
        REMOTE_ADDR="203.0.113.9",
    )
    with scopes_disabled():
        row = AuditEvent.objects.get(action="invitation.created")
    assert row.organization == org_a
    assert row.actor_type == "user"
    assert row.actor_label == "alice@example.test"
    assert row.ip == "203.0.113.9"
    assert row.metadata == {"email": "new@example.test", "role": "analyst"}
    assert row.target_type == "invitation"


def test_owners_see_their_log_with_filters_and_viewers_do_not(
    alice_client: Client, bob_client: Client, org_a: Organization, org_b: Organization
) -> None:
    audit(actor=SYSTEM, action="key.alpha", organization=org_a)
    audit(actor=SYSTEM, action="member.beta", organization=org_a)
    audit(actor=SYSTEM, action="key.secret_of_b", organization=org_b)
    page = alice_client.get("/o/org-a/audit/")
    assert page.status_code == 200
    actions = [e.action for e in page.context["page"]]
    assert "key.alpha" in actions and "member.beta" in actions
    assert "key.secret_of_b" not in actions
    filtered = alice_client.get("/o/org-a/audit/", {"action": "key."})
    assert [e.action for e in filtered.context["page"]] == ["key.alpha"]
    partial = alice_client.get("/o/org-a/audit/", {"action": "member"}, HTTP_HX_REQUEST="true")
    assert "member.beta" in partial.content.decode()
    assert "<html" not in partial.content.decode()
    assert bob_client.get("/o/org-a/audit/").status_code == 403


def test_a_bad_audit_filter_is_a_400(alice_client: Client, org_a: Organization) -> None:
    response = alice_client.get("/o/org-a/audit/", {"since": "2026-02-30"})
    assert response.status_code == 400
    assert "since" in response.context["form"].errors
    reversed_range = alice_client.get(
        "/o/org-a/audit/", {"since": "2026-03-02", "until": "2026-03-01"}
    )
    assert reversed_range.status_code == 400
