from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core import mail
from django.test import Client, TestCase
from django.utils import timezone
from django_scopes import scope, scopes_disabled

from hub.models import Invitation, Membership, Organization, User
from hub.permissions import Role
from tests.conftest import _member, login

pytestmark = pytest.mark.django_db


def _invite(client: Client, email: str, role: str = "analyst") -> str:
    # The invitation e-mail goes out when the transaction commits; run that callback here.
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = client.post("/o/org-a/members/", {"email": email, "role": role})
    assert response.status_code == 302, response.content
    match = re.search(r"/invitations/([\w-]+)/", str(mail.outbox[-1].body))
    assert match is not None
    return match.group(1)


@pytest.mark.clock
def test_an_invited_person_signs_in_and_joins_with_the_role(
    alice_client: Client, org_a: Organization
) -> None:
    token = _invite(alice_client, "dana@example.test", "analyst")
    assert mail.outbox[-1].to == ["dana@example.test"]
    assert "Org A" in mail.outbox[-1].subject
    dana = User.objects.create_user("dana@example.test", "a long enough password 1")
    client = login(dana)
    assert client.get(f"/invitations/{token}/").status_code == 200
    response = client.post(f"/invitations/{token}/")
    assert response.status_code == 302 and response["Location"] == "/o/org-a/"
    assert Membership.objects.get(organization=org_a, user=dana).role == Role.ANALYST
    # The link works once.
    assert client.post(f"/invitations/{token}/").status_code == 400


def test_an_invitation_cannot_be_accepted_by_someone_else(
    alice_client: Client, charlie: User
) -> None:
    token = _invite(alice_client, "dana@example.test")
    response = login(charlie).post(f"/invitations/{token}/")
    assert response.status_code == 400
    assert "another address" in response.content.decode()
    assert not Membership.objects.filter(user=charlie, organization__slug="org-a").exists()


@pytest.mark.clock
def test_an_expired_or_revoked_invitation_is_refused(
    alice_client: Client, org_a: Organization
) -> None:
    token = _invite(alice_client, "late@example.test")
    late = User.objects.create_user("late@example.test", "a long enough password 1")
    with scopes_disabled():
        Invitation.objects.filter(email="late@example.test").update(
            expires_at=timezone.now() - timedelta(seconds=1)
        )
    assert login(late).post(f"/invitations/{token}/").status_code == 400
    token2 = _invite(alice_client, "gone@example.test")
    with scope(organization=org_a.pk):
        invitation = Invitation.objects.get(email="gone@example.test")
    assert (
        alice_client.post(f"/o/org-a/invitations/{invitation.public_id}/revoke/").status_code == 302
    )
    gone = User.objects.create_user("gone@example.test", "a long enough password 1")
    assert login(gone).post(f"/invitations/{token2}/").status_code == 400


def test_an_unknown_invitation_token_is_a_404() -> None:
    assert Client().get("/invitations/not-a-real-token/").status_code == 404


def test_an_admin_cannot_grant_or_touch_the_owner_role(org_a: Organization, alice: User) -> None:
    admin = _member(org_a, "adam@example.test", Role.ADMIN)
    client = login(admin)
    response = client.post("/o/org-a/members/", {"email": "x@example.test", "role": "owner"})
    assert response.status_code == 400
    assert "cannot grant" in response.content.decode()
    owner_membership = Membership.objects.get(user=alice)
    client.post(f"/o/org-a/members/{owner_membership.public_id}/role/", {"role": "viewer"})
    owner_membership.refresh_from_db()
    assert owner_membership.role == Role.OWNER


def test_the_last_owner_cannot_be_demoted_or_removed(alice_client: Client, alice: User) -> None:
    me = Membership.objects.get(user=alice)
    response = alice_client.post(
        f"/o/org-a/members/{me.public_id}/role/", {"role": "viewer"}, follow=True
    )
    assert "at least one owner" in response.content.decode()
    alice_client.post(f"/o/org-a/members/{me.public_id}/remove/")
    me.refresh_from_db()
    assert me.role == Role.OWNER


def test_an_owner_changes_a_role_and_removes_a_member(alice_client: Client, bob: User) -> None:
    membership = Membership.objects.get(user=bob)
    alice_client.post(f"/o/org-a/members/{membership.public_id}/role/", {"role": "analyst"})
    membership.refresh_from_db()
    assert membership.role == Role.ANALYST
    alice_client.post(f"/o/org-a/members/{membership.public_id}/remove/")
    assert not Membership.objects.filter(user=bob).exists()
    # Bob no longer sees the organisation at all.
    assert login(bob).get("/o/org-a/").status_code == 404


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"email": "nope", "role": "viewer"}, "email"),
        ({"email": "a@example.test", "role": "god"}, "role"),
    ],
)
def test_the_invitation_form_rejects_bad_input(
    alice_client: Client, data: dict[str, str], field: str
) -> None:
    response = alice_client.post("/o/org-a/members/", data)
    assert response.status_code == 400
    assert field in response.context["form"].errors
    assert mail.outbox == []


def test_inviting_an_existing_member_is_refused(alice_client: Client, bob: User) -> None:
    response = alice_client.post("/o/org-a/members/", {"email": bob.email, "role": "viewer"})
    assert response.status_code == 400
    assert "already a member" in response.content.decode()


def test_a_bad_role_change_is_refused(alice_client: Client, bob: User) -> None:
    membership = Membership.objects.get(user=bob)
    alice_client.post(f"/o/org-a/members/{membership.public_id}/role/", {"role": "emperor"})
    membership.refresh_from_db()
    assert membership.role == Role.VIEWER


def test_a_viewer_sees_members_but_cannot_invite(bob_client: Client) -> None:
    assert bob_client.get("/o/org-a/members/").status_code == 200
    assert (
        bob_client.post(
            "/o/org-a/members/", {"email": "x@example.test", "role": "viewer"}
        ).status_code
        == 403
    )
