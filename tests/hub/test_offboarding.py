"""Organisation offboarding (hub.offboarding): leaving, deleting, restoring and purging.

Org A (Alice owns it, Bob is a viewer) shares lists; org B (Charlie's) subscribes to them and
matches and exports through its API key. Org A is deleted; B must stop matching A's lists at
once and its export must carry the removals; A's keys, members and, after the grace period, its
data must be gone, while the audit log stays.
"""

from __future__ import annotations

import datetime as dt
import secrets

import pytest
import time_machine
from django.test import Client
from django.utils import timezone
from django_scopes import scope, scopes_disabled

from hub.audit import Actor
from hub.errors import ServiceError
from hub.models import ApiKey, AuditEvent, Invitation, Membership, Organization, User
from hub.offboarding import (
    organization_delete,
    organization_leave,
    organization_purge,
    organization_restore,
    organizations_purge_due,
)
from hub.permissions import Role
from hub.services import invitation_create, organization_set_approved
from hub.tasks import purge_deleted_organizations
from lists.models import Entry, Hash, HashList
from matching.models import (
    AllowedHash,
    Detection,
    KeptSubmission,
    WebhookDelivery,
    WebhookEndpoint,
)
from matching.reconcile import reconcile
from sharing.models import Dispute, MatchPolicy, Subscription
from tests.matching.test_export import replay
from tests.matching.test_match_api import add, own_list, random_pdq
from tests.sharing.test_access import (
    api,
    hits,
    matchable_live,
    new_list,
    publish,
    share,
    subscribe,
)

pytestmark = pytest.mark.django_db

SYSTEM = Actor(system="test")
GRACE = dt.timedelta(days=30)


@pytest.fixture
def api_b(org_b: Organization) -> Client:
    return api(org_b)


def delete(org: Organization, user: User) -> Organization:
    return organization_delete(org=org, confirm=org.slug, actor=Actor(user=user))


def actions(org: Organization) -> list[str]:
    with scopes_disabled():
        return list(
            AuditEvent.objects.filter(organization=org)
            .order_by("created", "id")
            .values_list("action", flat=True)
        )


def no_drift() -> bool:
    """The reconciler finds the access log, the list counters and the match index in step."""
    run = reconcile(dry_run=True, actor=SYSTEM, trigger="test")
    assert run.drift == 0, run.details
    return True


def shared_list_of_a(org_a: Organization, org_b: Organization, visibility: str = "open") -> str:
    """An open (or anonymous) list of A with one PDQ hash, to which B subscribes; the hash."""
    value = random_pdq()
    shared = new_list(org_a, f"Shared {visibility}")
    add(shared, ("pdq", value))
    share(shared, visibility)
    subscribe(org_b, shared)
    return value


# --- deleting ---------------------------------------------------------------------------------


def test_deleting_removes_its_open_lists_from_subscribers_matches_and_export_at_once(
    org_a: Organization, org_b: Organization, alice: User, api_b: Client
) -> None:
    value = shared_list_of_a(org_a, org_b)
    b_own = random_pdq()
    add(own_list(org_b), ("pdq", b_own))
    assert len(hits(api_b, value)) == 1
    before, cursor = replay(api_b)
    assert before == matchable_live(org_b)
    assert any(item[2] == value for item in before)

    delete(org_a, alice)

    assert hits(api_b, value) == []
    assert len(hits(api_b, b_own)) == 1  # B's own lists are untouched
    after, _ = replay(api_b, cursor, start=before)
    assert not any(item[2] == value for item in after)
    assert after == matchable_live(org_b)
    assert replay(api_b)[0] == after  # replaying from the start says the same


def test_an_anonymous_list_stops_matching_at_once_and_leaves_the_export_at_publication(
    org_a: Organization, org_b: Organization, alice: User, api_b: Client
) -> None:
    value = shared_list_of_a(org_a, org_b, "anonymous")
    assert len(hits(api_b, value)) == 1
    before, cursor = replay(api_b)
    assert any(item[2] == value for item in before)

    delete(org_a, alice)
    assert hits(api_b, value) == []
    publish()
    after, _ = replay(api_b, cursor, start=before)
    assert not any(item[2] == value for item in after)
    assert after == matchable_live(org_b)


def test_its_keys_are_refused_and_revoked_with_an_audit_line_each(
    org_a: Organization, alice: User, api_a: Client, key_a: tuple[ApiKey, str]
) -> None:
    assert api_a.get("/api/v1/me").status_code == 200
    delete(org_a, alice)
    response = api_a.get("/api/v1/me")
    assert response.status_code == 401
    assert response.json()["error"]["code"]
    with scopes_disabled():
        assert ApiKey.objects.get(pk=key_a[0].pk).revoked_at is not None
    assert "api_key.revoked" in actions(org_a)


def test_its_members_get_404_and_no_longer_see_it_in_their_organisations(
    org_a: Organization, org_b: Organization, alice: User, bob: User, alice_client: Client
) -> None:
    Membership.objects.create(organization=org_b, user=alice, role="viewer")
    assert alice_client.get("/o/org-a/").status_code == 200
    delete(org_a, alice)
    for path in ("/o/org-a/", "/o/org-a/settings/", "/o/org-a/members/", "/o/org-a/lists/"):
        assert alice_client.get(path).status_code == 404, path
    response = alice_client.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/o/org-b/"


def test_its_webhooks_are_disabled_and_pending_invitations_revoked(
    org_a: Organization, alice: User
) -> None:
    with scope(organization=org_a.pk):
        hook = WebhookEndpoint.objects.create(
            organization=org_a, url="https://hooks.example.test/a", secret="s"
        )
        invitation, _ = invitation_create(
            org=org_a, email="erin@example.test", role="viewer", granter=Role.OWNER, actor=SYSTEM
        )
    deleted = delete(org_a, alice)
    with scopes_disabled():
        assert not WebhookEndpoint.objects.get(pk=hook.pk).enabled
        assert Invitation.objects.get(pk=invitation.pk).status == "revoked"
    with scopes_disabled():
        [event] = AuditEvent.objects.filter(organization=org_a, action="organization.deleted")
    assert event.metadata["webhooks_disabled"] == 1
    assert deleted.deleted_at is not None
    assert event.metadata["purge_after"] == (deleted.deleted_at + GRACE).isoformat()


def test_an_owner_deletes_from_the_settings_page_typing_the_short_name(
    org_a: Organization, alice: User, alice_client: Client
) -> None:
    page = alice_client.get("/o/org-a/settings/")
    assert b"Delete organisation" in page.content
    response = alice_client.post("/o/org-a/settings/delete/", {"confirm": "org-b"})
    assert response.status_code == 302
    assert response["Location"] == "/o/org-a/settings/"
    org_a.refresh_from_db()
    assert org_a.deleted_at is None
    response = alice_client.post("/o/org-a/settings/delete/", {"confirm": "org-a"})
    assert response.status_code == 302
    assert response["Location"] == "/"
    org_a.refresh_from_db()
    assert org_a.deleted_at is not None
    assert not org_a.approved
    assert actions(org_a)[-1] == "organization.deleted"


def test_only_an_owner_may_delete(org_a: Organization, bob: User, bob_client: Client) -> None:
    response = bob_client.post("/o/org-a/settings/delete/", {"confirm": "org-a"})
    assert response.status_code == 403
    org_a.refresh_from_db()
    assert org_a.deleted_at is None


def test_staff_delete_only_a_suspended_organisation(
    org_a: Organization, staff_client: Client
) -> None:
    response = staff_client.post("/staff/organizations/org-a/delete/", {"confirm": "org-a"})
    assert response.status_code == 302
    org_a.refresh_from_db()
    assert org_a.deleted_at is None  # approved: refused
    organization_set_approved(org=org_a, approved=False, actor=SYSTEM)
    response = staff_client.post("/staff/organizations/org-a/delete/", {"confirm": "org-a"})
    assert response.status_code == 302
    org_a.refresh_from_db()
    assert org_a.deleted_at is not None
    with scopes_disabled():
        event = AuditEvent.objects.get(organization=org_a, action="organization.deleted")
    assert event.actor_label == "steve@example.test"
    assert event.metadata["by_staff"] is True
    page = staff_client.get("/staff/organizations/")
    assert b"Restore" in page.content
    # A deleted organisation is not approved again before it is restored.
    staff_client.post("/staff/organizations/org-a/approve/", {"approved": "1"})
    org_a.refresh_from_db()
    assert not org_a.approved


# --- restoring --------------------------------------------------------------------------------


def test_staff_restore_within_the_grace_period_and_approval_brings_subscriptions_back(
    org_a: Organization,
    org_b: Organization,
    alice: User,
    alice_client: Client,
    api_b: Client,
    staff_client: Client,
) -> None:
    value = shared_list_of_a(org_a, org_b)
    before, cursor = replay(api_b)
    delete(org_a, alice)
    response = staff_client.post("/staff/organizations/org-a/restore/")
    assert response.status_code == 302
    org_a.refresh_from_db()
    assert org_a.deleted_at is None and org_a.purge_after is None
    assert not org_a.approved  # restored suspended: approving it is a separate step
    assert alice_client.get("/o/org-a/").status_code == 200
    assert hits(api_b, value) == []
    organization_set_approved(org=org_a, approved=True, actor=SYSTEM)
    assert len(hits(api_b, value)) == 1  # B's subscription was kept
    after, _ = replay(api_b, cursor, start=before)
    assert after == before == matchable_live(org_b)
    assert actions(org_a)[-3:] == [
        "organization.deleted",
        "organization.restored",
        "organization.approved",
    ]


def test_restoring_is_refused_once_the_grace_period_is_over(
    org_a: Organization, alice: User
) -> None:
    delete(org_a, alice)
    over = timezone.now() + GRACE + dt.timedelta(minutes=1)
    with time_machine.travel(over, tick=False), pytest.raises(ServiceError) as refused:
        organization_restore(org=org_a, actor=SYSTEM)
    assert refused.value.code == "grace_over"


# --- purging ----------------------------------------------------------------------------------


def make_tenant_data(org_a: Organization, org_b: Organization) -> dict[str, int]:
    """One of each kind of A's data the purge deletes; the ids to look for afterwards."""
    b_list = new_list(org_b, "B shared")
    value = random_pdq()
    add(b_list, ("pdq", value))
    share(b_list)
    with scopes_disabled():
        hash_row = Hash.objects.get(signal_type="pdq", value=bytes.fromhex(value))
    with scope(organization=org_a.pk):
        detection = Detection.objects.create(organization=org_a, source_label="test")
        hook = WebhookEndpoint.objects.create(
            organization=org_a, url="https://hooks.example.test/a", secret="s"
        )
        delivery = WebhookDelivery.objects.create(
            organization=org_a,
            endpoint=hook,
            detection=detection,
            event="detection",
            event_id="e1",
            status="succeeded",
        )
        allowed = AllowedHash.objects.create(
            organization=org_a,
            signal_type="pdq",
            value=secrets.token_bytes(32),
            added_by_label="test",
        )
        kept = KeptSubmission.objects.create(
            organization=org_a,
            signal_type="pdq",
            value=secrets.token_bytes(32),
            requested_at=timezone.now(),
            expires_at=timezone.now() + dt.timedelta(days=90),
        )
        policy = MatchPolicy.objects.create(organization=org_a, retroactive_days=7)
    with scopes_disabled():
        dispute = Dispute.objects.create(
            organization=org_a,
            hash_list=b_list,
            hash=hash_row,
            reason="other",
            created_by_label="alice",
        )
        subscription = Subscription.objects.create(organization=org_a, hash_list=b_list)
    return {
        "detection": detection.pk,
        "delivery": delivery.pk,
        "allowed": allowed.pk,
        "kept": kept.pk,
        "policy": policy.pk,
        "dispute": dispute.pk,
        "subscription": subscription.pk,
        "webhook": hook.pk,
    }


def test_after_the_grace_period_its_data_is_purged_and_the_audit_log_kept(
    org_a: Organization,
    org_b: Organization,
    alice: User,
    bob: User,
    api_b: Client,
    key_a: tuple[ApiKey, str],
) -> None:
    value = shared_list_of_a(org_a, org_b)
    own_value = random_pdq()
    own_list_pk = own_list(org_a).pk
    add(own_list(org_a), ("pdq", own_value))
    ids = make_tenant_data(org_a, org_b)
    before, cursor = replay(api_b)
    delete(org_a, alice)
    with scopes_disabled():
        a_lists = list(HashList.objects.filter(organization=org_a).values_list("pk", flat=True))
        entries_before = Entry.objects.filter(hash_list_id__in=a_lists).count()
    assert entries_before == 2

    assert no_drift()
    # Not yet: the grace period runs.
    assert organizations_purge_due() == {"purged": 0, "erased": 0}
    org_a.refresh_from_db()
    assert org_a.purged_at is None

    later = timezone.now() + GRACE + dt.timedelta(hours=1)
    with time_machine.travel(later, tick=False):
        assert purge_deleted_organizations.apply().get() == {"purged": 1, "erased": 0}
    org_a.refresh_from_db()
    assert org_a.purged_at is not None
    assert org_a.name == "Deleted organisation"
    assert org_a.slug != "org-a"
    with scopes_disabled():
        assert not Membership.objects.filter(organization=org_a).exists()
        assert not Detection.objects.filter(pk=ids["detection"]).exists()
        assert not WebhookDelivery.objects.filter(pk=ids["delivery"]).exists()
        assert not WebhookEndpoint.objects.filter(pk=ids["webhook"]).exists()
        assert not AllowedHash.objects.filter(pk=ids["allowed"]).exists()
        assert not KeptSubmission.objects.filter(pk=ids["kept"]).exists()
        assert not MatchPolicy.objects.filter(pk=ids["policy"]).exists()
        assert not Dispute.objects.filter(pk=ids["dispute"]).exists()
        assert not Subscription.objects.filter(organization=org_a).exists()
        assert not Subscription.objects.filter(hash_list_id__in=a_lists).exists()
        # Its lists are deleted, every entry tombstoned (erased a day later).
        assert not HashList.objects.filter(organization=org_a, deleted_at__isnull=True).exists()
        assert not Entry.objects.filter(hash_list_id__in=a_lists, removed_seq__isnull=True).exists()
        # Its keys stay, revoked: audit lines point to them.
        assert ApiKey.objects.filter(organization=org_a).exists()
    # The short name is free again.
    assert not Organization.objects.filter(slug="org-a").exists()
    # B still replays to what it matches.
    assert replay(api_b, cursor, start=before)[0] == matchable_live(org_b)
    assert hits(api_b, value) == []
    assert no_drift()

    with time_machine.travel(later + dt.timedelta(days=1, minutes=1), tick=False):
        assert organizations_purge_due() == {"purged": 0, "erased": 1}
    with scopes_disabled():
        # The entries of lists no one else matched are gone; those of the shared list are bare
        # tombstones (for exports that have yet to read the removals), without provenance.
        assert not Entry.objects.filter(hash_list=own_list_pk).exists()
        [tombstone] = Entry.objects.filter(hash_list_id__in=a_lists)
        assert bytes(tombstone.hash.value).hex() == value
        assert tombstone.removed_seq is not None
        assert (tombstone.added_by_label, tombstone.note, tombstone.labels) == ("", "", [])
        assert set(HashList.objects.filter(pk__in=a_lists).values_list("name", flat=True)) == {
            "Deleted list"
        }
    assert replay(api_b)[0] == matchable_live(org_b)
    assert replay(api_b, cursor, start=before)[0] == matchable_live(org_b)
    assert no_drift()

    # The audit log is kept whole, with the organisation its lines name.
    kept = actions(org_a)
    for action in ("organization.deleted", "organization.purged", "organization.erased"):
        assert action in kept
    with scopes_disabled():
        assert AuditEvent.objects.filter(organization=org_a, action="list.deleted").count() == 3
    with scopes_disabled(), pytest.raises(PermissionError):
        AuditEvent.objects.filter(organization=org_a).delete()


def test_a_purge_before_the_grace_period_is_refused(org_a: Organization, alice: User) -> None:
    delete(org_a, alice)
    with pytest.raises(ServiceError) as refused:
        organization_purge(org=org_a, actor=SYSTEM)
    assert refused.value.code == "not_due"


def test_other_organisations_disputes_on_its_lists_are_kept(
    org_a: Organization, org_b: Organization, alice: User
) -> None:
    value = shared_list_of_a(org_a, org_b)
    with scopes_disabled():
        a_list = HashList.objects.get(organization=org_a, name="Shared open")
        hash_row = Hash.objects.get(signal_type="pdq", value=bytes.fromhex(value))
        dispute = Dispute.objects.create(
            organization=org_b, hash_list=a_list, hash=hash_row, reason="other"
        )
    delete(org_a, alice)
    with time_machine.travel(timezone.now() + GRACE + dt.timedelta(days=2), tick=False):
        organizations_purge_due()
        organizations_purge_due()
    with scopes_disabled():
        assert Dispute.objects.filter(pk=dispute.pk).exists()


# --- leaving ----------------------------------------------------------------------------------


def test_a_member_leaves_from_the_members_page(
    org_a: Organization, bob: User, bob_client: Client
) -> None:
    page = bob_client.get("/o/org-a/members/")
    assert b"Leave the organisation" in page.content
    response = bob_client.post("/o/org-a/members/leave/")
    assert response.status_code == 302
    assert response["Location"] == "/"
    assert bob_client.get("/o/org-a/").status_code == 404
    assert actions(org_a)[-1] == "membership.left"


def test_the_only_owner_cannot_leave_but_one_of_two_owners_can(
    org_a: Organization, alice: User, alice_client: Client, bob: User
) -> None:
    response = alice_client.post("/o/org-a/members/leave/")
    assert response.status_code == 302
    assert response["Location"] == "/o/org-a/members/"
    assert Membership.objects.filter(organization=org_a, user=alice).exists()
    with pytest.raises(ServiceError) as refused:
        organization_leave(
            membership=Membership.objects.get(organization=org_a, user=alice), actor=SYSTEM
        )
    assert refused.value.code == "last_owner"
    Membership.objects.filter(organization=org_a, user=bob).update(role="owner")
    response = alice_client.post("/o/org-a/members/leave/")
    assert response["Location"] == "/"
    assert not Membership.objects.filter(organization=org_a, user=alice).exists()
