"""The dashboard's recent activity speaks in sentences (issue 19): every mapped audit action has
its sentence, an unknown one reads as its code made readable, the organisation's own lists are
named, and nothing names who owns an anonymous list.

Alice owns org A (her name is set: "Alice"); Bob is a viewer in org A and does not see the audit
log; Charlie owns org B, whose anonymous list org A reads.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django_scopes import scope

from hub import activity
from hub.audit import Actor
from hub.models import AuditEvent, Organization, User
from lists import services as list_services
from lists.models import HashList
from sharing import services as sharing_services

pytestmark = pytest.mark.django_db

WHO = "Alice"

# action -> (metadata, target id, the list name the organisation knows the target by, sentence)
CASES: dict[str, tuple[dict[str, Any], str, str, str]] = {
    "detection.created": ({}, "d1", "", "Alice matched content that raised a detection"),
    "detection.confirmed": (
        {"category": "csam", "added": 2},
        "d1",
        "",
        "Alice confirmed a detection into CSAM, adding 2 hashes",
    ),
    "detection.false_positive": ({}, "d1", "", "Alice marked a detection a false positive"),
    "detection.dismissed": ({}, "d1", "", "Alice dismissed a detection"),
    "detection.retracted": (
        {},
        "d1",
        "",
        "Alice flagged a detection retracted: every entry it matched has been removed",
    ),
    "detections.purged": (
        {"purged": 3},
        "",
        "",
        "Alice deleted 3 detections past the retention period",
    ),
    "preservation.held": (
        {"hold": "h1", "days": 365, "report": "r1"},
        "d1",
        "",
        "Alice held a detection for preservation for 365 days when its report was filed",
    ),
    "preservation.released": (
        {"hold": "h1"},
        "d1",
        "",
        "Alice released a detection's preservation hold",
    ),
    "webhooks.deliveries_purged": (
        {"purged": 1},
        "",
        "",
        "Alice deleted 1 webhook delivery log past the retention period",
    ),
    "report.opened": ({"uploader_ref_set": True}, "r1", "", "Alice opened a report on a detection"),
    "report.updated": (
        {"fields": ["notes", "uploader_ref"]},
        "r1",
        "",
        "Alice edited a draft report (notes, uploader_ref)",
    ),
    "report.filed": (
        {"hotline_report_id": "CT-1"},
        "r1",
        "",
        "Alice filed a report with the hotline as CT-1",
    ),
    "report.acknowledged": (
        {},
        "r1",
        "",
        "Alice recorded that the hotline acknowledged a report",
    ),
    "report.downloaded": (
        {"profile": "ncmec"},
        "r1",
        "",
        "Alice downloaded a report (ncmec profile)",
    ),
    "report.profile_set": (
        {"profile": "generic", "previous": "ncmec"},
        "org-a",
        "",
        "Alice chose the generic hotline profile for reports",
    ),
    "report.listed": (
        {"source": "Hotline Feed", "hashes": 1},
        "r1",
        "",
        "Alice found a reported hash now listed by Hotline Feed",
    ),
    "reports.purged": (
        {"purged": 2},
        "",
        "",
        "Alice deleted 2 reports past the retention period",
    ),
    "allow_list.removed": ({}, "a1", "", "Alice took a hash off the allow list"),
    "policy.link_template_set": (
        {"template": "https://x.test/{content_ref}"},
        "org-a",
        "",
        "Alice set the link to the moderation tool",
    ),
    "entries.added": (
        {"added": 12, "already_present": 1},
        "l1",
        "SE",
        "Alice added 12 hashes to “SE” (1 already there)",
    ),
    "entries.removed": ({"removed": 1}, "l1", "SE", "Alice removed 1 hash from “SE”"),
    "entries.imported": (
        {"added": 5, "rejected": 2},
        "l1",
        "CSAM",
        "Alice imported 5 hashes into “CSAM”, 2 lines rejected",
    ),
    "import.queued": (
        {"lines": 7, "filename": "batch.csv"},
        "i1",
        "",
        "Alice queued an import of 7 lines (batch.csv)",
    ),
    "list.created": (
        {"name": "Escalations", "category": "csam"},
        "l1",
        "",
        "Alice created the list “Escalations” (CSAM)",
    ),
    "list.updated": ({"description": {}}, "l1", "SE", "Alice changed description of “SE”"),
    "list.deleted": ({"name": "Old"}, "l1", "", "Alice deleted the list “Old”"),
    "list.exported": ({"name": "SE"}, "l1", "SE", "Alice exported “SE”"),
    "list.entries_read": ({"entries": 3}, "l9", "", "Alice read entries of a shared list"),
    "list.visibility_changed": ({"to": "open"}, "l1", "SE", "Alice made “SE” open"),
    "list.owner_revealed": ({"name": "SE"}, "l1", "SE", "Alice looked up who owns “SE”"),
    "export.read": ({}, "", "", "Alice read the match export"),
    "subscription.added": ({}, "l9", "", "Alice subscribed to a shared list"),
    "subscription.removed": ({}, "l9", "", "Alice unsubscribed from a shared list"),
    "subscription.category_added": ({}, "se", "", "Alice subscribed to every shared SE list"),
    "subscription.category_removed": (
        {},
        "csam",
        "",
        "Alice unsubscribed from every shared CSAM list",
    ),
    "sharing.preferences_changed": (
        {"ignore_disputed": True},
        "org-a",
        "",
        "Alice changed how disputed entries are matched",
    ),
    "source.access_granted": (
        {"source": "Hotline"},
        "s1",
        "",
        "Alice opened the verified source Hotline to the organisation",
    ),
    "source.access_revoked": (
        {"source": "Hotline"},
        "s1",
        "",
        "Alice closed the verified source Hotline to the organisation",
    ),
    "source.access_changed": ({}, "s1", "", "Alice changed which verified sources are open"),
    "dispute.created": ({"list_name": "Quiet"}, "x1", "", "Alice disputed an entry on “Quiet”"),
    "dispute.received": (
        {"list_name": "SE", "disputer": "a member organisation"},
        "x1",
        "",
        "Alice: a member organisation disputed an entry on “SE”",
    ),
    "dispute.withdrawn": ({"list_name": "Quiet"}, "x1", "", "Alice withdrew a dispute on “Quiet”"),
    "dispute.rejected": ({"list_name": "SE"}, "x1", "", "Alice rejected a dispute on “SE”"),
    "dispute.retracted": (
        {"list_name": "SE"},
        "x1",
        "",
        "Alice upheld a dispute and retracted the entry on “SE”",
    ),
    "dispute.entry_removed": (
        {"list_name": "SE"},
        "x1",
        "",
        "Alice closed a dispute: the entry was removed on “SE”",
    ),
    "webhook.created": ({}, "w1", "", "Alice added a webhook"),
    "webhook.deleted": ({}, "w1", "", "Alice deleted a webhook"),
    "webhook.secret_rotated": ({}, "w1", "", "Alice rotated a webhook's secret"),
    "webhook.tested": ({}, "w1", "", "Alice sent a test event to a webhook"),
    "organization.created": ({"name": "Org A"}, "org-a", "", "Alice created the organisation"),
    "organization.approved": ({}, "org-a", "", "Alice approved the organisation"),
    "organization.unapproved": ({}, "org-a", "", "Alice suspended the organisation's approval"),
    "organization.deleted": ({}, "org-a", "", "Alice deleted the organisation"),
    "organization.restored": ({}, "org-a", "", "Alice restored the organisation"),
    "organization.purged": ({}, "org-a", "", "Alice purged the organisation's data"),
    "organization.erased": ({}, "org-a", "", "Alice erased the organisation's removed entries"),
    "membership.left": ({}, "org-a", "", "Alice left the organisation"),
    "organization.settings_changed": (
        {"name": {}, "require_mfa": {}},
        "org-a",
        "",
        "Alice changed the organisation's settings (name, require_mfa)",
    ),
    "organization.quotas_changed": ({}, "org-a", "", "Alice changed the organisation's quotas"),
    "invitation.created": (
        {"email": "erin@example.test", "role": "analyst"},
        "v1",
        "",
        "Alice invited erin@example.test as analyst",
    ),
    "invitation.accepted": (
        {"role": "viewer"},
        "v1",
        "",
        "Alice joined the organisation as viewer",
    ),
    "invitation.revoked": (
        {"email": "erin@example.test"},
        "v1",
        "",
        "Alice withdrew the invitation of erin@example.test",
    ),
    "membership.role_changed": (
        {"email": "bob@example.test", "to": "admin"},
        "m1",
        "",
        "Alice made bob@example.test admin",
    ),
    "membership.removed": (
        {"email": "bob@example.test"},
        "m1",
        "",
        "Alice removed bob@example.test",
    ),
    "membership.set_by_command": (
        {"email": "bob@example.test", "role": "viewer"},
        "m1",
        "",
        "Alice made bob@example.test a member (viewer)",
    ),
    "api_key.created": ({"name": "prod"}, "k1", "", "Alice created the API key prod"),
    "api_key.revoked": ({"name": "prod"}, "k1", "", "Alice revoked the API key prod"),
    "api_key.rotated": ({}, "k1", "", "Alice rotated an API key"),
    "api_key.scopes_changed": ({}, "k1", "", "Alice changed an API key's scopes"),
    "hub.reconciled": ({}, "", "", "Alice reconciled the hub's derived state"),
    "system.worker_check": ({}, "", "", "Alice checked that the background worker runs"),
}


@pytest.fixture
def named_alice(alice: User) -> User:
    alice.name = WHO
    alice.save(update_fields=["name"])
    return alice


def event(user: User | None, action: str, metadata: dict[str, Any], target: str) -> AuditEvent:
    return AuditEvent(
        actor_type=AuditEvent.ActorType.USER if user else AuditEvent.ActorType.SYSTEM,
        actor_user=user,
        actor_label=user.email if user else "system",
        action=action,
        target_id=target,
        metadata=metadata,
    )


def test_every_mapped_action_has_a_case_here() -> None:
    assert set(CASES) == set(activity.SENTENCES)


@pytest.mark.parametrize("action", sorted(CASES))
def test_each_mapped_action_reads_as_its_sentence(named_alice: User, action: str) -> None:
    metadata, target, name, sentence = CASES[action]
    assert activity.activity_sentence(event(named_alice, action, metadata, target), name) == (
        sentence
    )


def test_an_unknown_action_reads_as_its_code_made_readable(named_alice: User) -> None:
    said = activity.activity_sentence(event(named_alice, "policy.entry_disabled", {}, "x"))
    assert said == "Alice: policy entry disabled"


def test_missing_or_odd_metadata_never_breaks_a_sentence(named_alice: User) -> None:
    odd: dict[str, Any] = {"added": "twelve", "category": 5, "name": None, "email": ["x"]}
    for action in activity.SENTENCES:
        said = activity.activity_sentence(event(named_alice, action, odd, ""))
        assert said.startswith(WHO)
        assert "None" not in said and "twelve" not in said


def test_who_acted_is_a_name_an_email_a_key_or_hashhub(alice: User) -> None:
    assert activity.actor_name(event(alice, "x.y", {}, "")) == "alice@example.test"
    assert activity.actor_name(event(None, "x.y", {}, "")) == "HashHub"
    keyed = AuditEvent(actor_type=AuditEvent.ActorType.API_KEY, actor_label="API key prod (hh_1)")
    assert activity.actor_name(keyed) == "API key prod (hh_1)"


def test_the_dashboard_tells_what_happened_naming_the_orgs_own_lists(
    named_alice: User, alice_client: Client, bob_client: Client, org_a: Organization
) -> None:
    with scope(organization=org_a.pk):
        se_list = HashList.objects.get(organization=org_a, category="se", is_default=True)
        list_services.entry_add(
            hash_list=se_list,
            items=[
                list_services.EntryInput("md5", "ab" * 16),
                list_services.EntryInput("md5", "cd" * 16),
            ],
            actor=Actor(user=named_alice),
        )

    page = alice_client.get("/o/org-a/").content.decode()

    assert f"Alice added 2 hashes to “{se_list.name}”" in page
    assert "<code>entries.added</code>" not in page
    assert "Recent activity" not in bob_client.get("/o/org-a/").content.decode()


def test_another_orgs_anonymous_list_is_never_named_nor_its_owner(
    named_alice: User, alice_client: Client, org_a: Organization, org_b: Organization
) -> None:
    with scope(organization=org_b.pk):
        quiet = list_services.list_create(
            org=org_b, name="Quiet Owner List", category="csam", actor=Actor(system="test")
        )
        sharing_services.list_visibility_set(
            hash_list=quiet, visibility="anonymous", actor=Actor(system="test")
        )
    sharing_services.anonymous_publish()
    for action in ("subscription.added", "list.entries_read"):
        with scope(organization=org_a.pk):
            AuditEvent.objects.create(
                organization=org_a,
                actor_type=AuditEvent.ActorType.USER,
                actor_user=named_alice,
                actor_label=named_alice.email,
                action=action,
                target_type="list",
                target_id=quiet.public_id,
            )

    page = alice_client.get("/o/org-a/").content.decode()

    assert "Alice subscribed to a shared list" in page
    assert "Alice read entries of a shared list" in page
    assert "Quiet Owner List" not in page
    assert org_b.name not in page and org_b.slug not in page
