from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django_scopes import scopes_disabled

from hub.models import AuditEvent, Membership, Organization, User
from hub.permissions import PERMISSIONS, Role, role_has
from hub.services import organization_created
from tests.conftest import login

pytestmark = pytest.mark.django_db


def test_the_permission_table_matches_the_roles_of_the_brief() -> None:
    assert {r for r in Role if role_has(r, "members.manage")} == {Role.OWNER, Role.ADMIN}
    assert {r for r in Role if role_has(r, "keys.manage")} == {Role.OWNER, Role.ADMIN}
    assert {r for r in Role if role_has(r, "lists.edit")} == {Role.OWNER, Role.ADMIN, Role.ANALYST}
    assert {r for r in Role if role_has(r, "detections.review")} == {
        Role.OWNER,
        Role.ADMIN,
        Role.ANALYST,
    }
    assert {r for r in Role if role_has(r, "org.read")} == set(Role)
    assert set(PERMISSIONS) >= {
        "org.read",
        "lists.edit",
        "detections.review",
        "members.manage",
        "keys.manage",
    }


def test_a_user_creates_an_organisation_and_becomes_its_unapproved_owner() -> None:
    user = User.objects.create_user("founder@example.test", "a long enough password 1")
    announced: list[Organization] = []

    def receiver(sender: object, organization: Organization, **kwargs: object) -> None:
        announced.append(organization)

    organization_created.connect(receiver)
    try:
        response = login(user).post("/orgs/new/", {"name": "Founders Inc", "slug": ""})
    finally:
        organization_created.disconnect(receiver)
    assert response.status_code == 302
    org = Organization.objects.get(slug="founders-inc")
    assert response["Location"] == "/o/founders-inc/"
    assert not org.approved
    assert Membership.objects.get(organization=org).role == Role.OWNER
    assert announced == [org]
    with scopes_disabled():
        assert (
            AuditEvent.objects.filter(organization=org, action="organization.created").count() == 1
        )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": ""}, "This field is required."),
        ({"name": "Org A", "slug": "org-a"}, "already taken"),
        ({"name": "!!!", "slug": ""}, "letters or digits"),
        ({"name": "x", "slug": "no spaces allowed"}, "Enter a valid"),
    ],
)
def test_organisation_creation_rejects_bad_input(
    org_a: Organization, data: dict[str, str], message: str
) -> None:
    user = User.objects.create_user("someone@example.test", "a long enough password 1")
    response = login(user).post("/orgs/new/", data)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Membership.objects.filter(user=user).exists()


def test_home_sends_a_member_to_their_organisation_and_a_newcomer_to_create_one(
    alice_client: Client,
) -> None:
    assert alice_client.get("/")["Location"] == "/o/org-a/"
    newcomer = User.objects.create_user("new@example.test", "a long enough password 1")
    assert login(newcomer).get("/")["Location"] == "/orgs/new/"
    assert Client().get("/")["Location"].startswith("/accounts/login/")


def test_a_user_in_two_organisations_switches_between_them(
    alice: User, org_b: Organization
) -> None:
    Membership.objects.create(organization=org_b, user=alice, role=Role.VIEWER)
    client = login(alice)
    page = client.get("/o/org-a/")
    assert {m.organization.slug for m in page.context["my_memberships"]} == {"org-a", "org-b"}
    assert client.get("/o/org-b/").context["current_org"] == org_b
    # Home remembers the organisation used last.
    assert client.get("/")["Location"] == "/o/org-b/"


def test_staff_approve_an_organisation_and_it_is_audited(
    staff_client: Client, org_a: Organization
) -> None:
    org_a.approved = False
    org_a.save()
    listing = staff_client.get("/staff/organizations/?pending=1")
    assert org_a in listing.context["orgs"]
    response = staff_client.post(f"/staff/organizations/{org_a.slug}/approve/", {"approved": "1"})
    assert response.status_code == 302
    org_a.refresh_from_db()
    assert org_a.approved and org_a.approved_at is not None
    with scopes_disabled():
        assert AuditEvent.objects.filter(
            organization=org_a, action="organization.approved"
        ).exists()


def test_non_staff_cannot_see_or_use_the_staff_pages(
    alice_client: Client, org_a: Organization
) -> None:
    assert alice_client.get("/staff/organizations/").status_code == 404
    assert alice_client.post(f"/staff/organizations/{org_a.slug}/approve/").status_code == 404
    assert Client().get("/staff/organizations/").status_code == 302


def test_only_the_owner_changes_organisation_settings(
    alice_client: Client, bob_client: Client, org_a: Organization
) -> None:
    assert bob_client.post("/o/org-a/settings/", {"name": "Hacked"}).status_code == 403
    assert alice_client.post("/o/org-a/settings/", {"name": ""}).status_code == 400
    response = alice_client.post(
        "/o/org-a/settings/", {"name": "Org A Renamed", "require_mfa": "on"}
    )
    assert response.status_code == 302
    org_a.refresh_from_db()
    assert org_a.name == "Org A Renamed" and org_a.require_mfa


def test_createorg_and_createmember_commands(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = StringIO()
    call_command("createorg", "--name", "Shell Org", "--approve", stdout=out)
    assert "Created organisation Shell Org (shell-org), approved." in out.getvalue()
    monkeypatch.setenv("NEW_PW", "a long enough password 1")
    call_command(
        "createmember", "--org", "shell-org", "--email", "Ops@Example.test", "--role", "admin",
        "--password-env", "NEW_PW", stdout=out,
    )  # fmt: skip
    user = User.objects.get(email="ops@example.test")
    assert user.check_password("a long enough password 1")
    assert Membership.objects.get(user=user).role == "admin"
    with pytest.raises(CommandError, match="slug_taken"):
        call_command("createorg", "--name", "Shell Org", stdout=out)
    with pytest.raises(CommandError, match="MISSING_PW is not set"):
        call_command(
            "createmember", "--org", "shell-org", "--email", "x@example.test", "--role", "viewer",
            "--password-env", "MISSING_PW", stdout=out,
        )  # fmt: skip


def test_seeddemo_creates_the_demo_once() -> None:
    out = StringIO()
    call_command("seeddemo", "--once", stdout=out)
    assert "Demo data created." in out.getvalue()
    assert Organization.objects.filter(slug__in=["acme", "borealis", "cinder"]).count() == 3
    assert User.objects.get(email="alice@example.org").check_password("hashhub-demo-2026")
    call_command("seeddemo", "--once", stdout=out)
    assert "already present" in out.getvalue()
    assert Organization.objects.count() == 3
