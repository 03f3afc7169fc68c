"""Re-authentication and two-factor where it matters (hub.decorators).

Members' sensitive actions (API keys, webhooks, roles and removals, switching "require two-factor"
off) ask for the password or a second factor again unless the member authenticated within
HASHHUB_REAUTH_MINUTES. Staff pages need two-factor set up and a second factor within
HASHHUB_STAFF_REAUTH_MINUTES. A refused POST changes nothing and is not replayed afterwards: the
user comes back to the page and does it again.

Alice owns org A, Bob is a viewer in it, Steve is hub staff with an authenticator app. Everyone
logs in through the real login form here (password, then the code for those with two-factor), and
Python's clock is frozen at T0 and moved on by the test.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pyotp
import pytest
import time_machine
from allauth.mfa.totp.internal.auth import TOTP
from django.conf import settings
from django.test import Client
from django_scopes import scope, scopes_disabled

from hub.audit import Actor
from hub.models import ApiKey, AuditEvent, Membership, Organization, User
from hub.permissions import Role
from lists.models import Source
from lists.services import list_create
from matching.models import WebhookEndpoint
from matching.webhooks import webhook_create
from sharing.models import SourceEntitlement
from sharing.services import list_visibility_set
from tests.conftest import STAFF_TOTP_SECRET, make_key, make_staff
from tests.factories import PASSWORD, OrganizationFactory

pytestmark = pytest.mark.django_db

SYSTEM = Actor(system="test")
T0 = dt.datetime(2026, 3, 18, 16, 30, tzinfo=dt.UTC)
ALICE_TOTP_SECRET = "KRSXG5CTMVRXEZLUKRSXG5CTMVRXEZLU"  # made up


def minutes(count: float) -> dt.timedelta:
    return dt.timedelta(minutes=count)


@pytest.fixture
def clock() -> Iterator[time_machine.Traveller]:
    """Python's clock frozen at T0; ``clock.shift(...)`` moves it on."""
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


def log_in(user: User, *, totp_secret: str | None = None) -> Client:
    """A browser that logged in through the login form (and the two-factor step, if any)."""
    client = Client()
    response = client.post("/accounts/login/", {"login": user.email, "password": PASSWORD})
    if totp_secret is not None:
        assert response["Location"] == "/accounts/2fa/authenticate/"
        code = pyotp.TOTP(totp_secret).now()
        response = client.post("/accounts/2fa/authenticate/", {"code": code})
    assert response.status_code == 302 and response["Location"] == "/", response
    return client


def reauthenticate_with_password(client: Client, next_url: str) -> Any:
    return client.post(f"/accounts/reauthenticate/?next={quote(next_url)}", {"password": PASSWORD})


def reauthenticate_with_code(client: Client, secret: str, next_url: str) -> Any:
    code = pyotp.TOTP(secret).now()
    return client.post(f"/accounts/2fa/reauthenticate/?next={quote(next_url)}", {"code": code})


def audit_actions() -> list[str]:
    with scopes_disabled():
        return list(AuditEvent.objects.order_by("pk").values_list("action", flat=True))


def reauth_url(path: str, next_url: str) -> str:
    return f"{path}?next={quote(next_url, safe='')}"


MEMBER_REAUTH = "/accounts/reauthenticate/"
STAFF_REAUTH = "/accounts/2fa/reauthenticate/"


# --- members' sensitive actions -----------------------------------------------------------------


@dataclass(frozen=True)
class Action:
    """One sensitive action: the form's page, the POST, and whether it took effect."""

    page: str
    url: str
    data: dict[str, Any]
    done: Callable[[], bool]


def _key_by_name(org: Organization, name: str) -> ApiKey | None:
    with scopes_disabled():
        return ApiKey.objects.filter(organization=org, name=name).order_by("pk").last()


def _api_key_create(org: Organization, bob: User) -> Action:
    return Action(
        "/o/org-a/keys/",
        "/o/org-a/keys/",
        {"name": "pipeline", "scopes": ["match"]},
        lambda: _key_by_name(org, "pipeline") is not None,
    )


def _api_key_rotate(org: Organization, bob: User) -> Action:
    key, _secret = make_key(org, name="pipeline")

    def rotated() -> bool:
        with scopes_disabled():
            return ApiKey.objects.get(pk=key.pk).revoked_at is not None

    return Action("/o/org-a/keys/", f"/o/org-a/keys/{key.public_id}/rotate/", {}, rotated)


def _api_key_revoke(org: Organization, bob: User) -> Action:
    key, _secret = make_key(org, name="pipeline")

    def revoked() -> bool:
        with scopes_disabled():
            return ApiKey.objects.get(pk=key.pk).revoked_at is not None

    return Action("/o/org-a/keys/", f"/o/org-a/keys/{key.public_id}/revoke/", {}, revoked)


def _webhook(org: Organization) -> WebhookEndpoint:
    with scope(organization=org.pk):
        endpoint, _secret = webhook_create(
            org=org, url="https://8.8.8.8/hashhub", description="prod", actor=SYSTEM
        )
    return endpoint


def _webhook_create(org: Organization, bob: User) -> Action:
    def created() -> bool:
        with scopes_disabled():
            return WebhookEndpoint.objects.filter(organization=org).exists()

    data = {"url": "https://8.8.8.8/hashhub", "description": "prod"}
    return Action("/o/org-a/webhooks/", "/o/org-a/webhooks/", data, created)


def _webhook_rotate(org: Organization, bob: User) -> Action:
    endpoint = _webhook(org)

    def rotated() -> bool:
        with scopes_disabled():
            return WebhookEndpoint.objects.get(pk=endpoint.pk).secret != endpoint.secret

    url = f"/o/org-a/webhooks/{endpoint.public_id}/rotate/"
    return Action("/o/org-a/webhooks/", url, {}, rotated)


def _webhook_delete(org: Organization, bob: User) -> Action:
    endpoint = _webhook(org)

    def deleted() -> bool:
        with scopes_disabled():
            return WebhookEndpoint.objects.get(pk=endpoint.pk).deleted_at is not None

    url = f"/o/org-a/webhooks/{endpoint.public_id}/delete/"
    return Action("/o/org-a/webhooks/", url, {}, deleted)


def _bobs_membership(org: Organization, bob: User) -> Membership | None:
    return Membership.objects.filter(organization=org, user=bob).first()


def _member_role(org: Organization, bob: User) -> Action:
    membership = _bobs_membership(org, bob)
    assert membership is not None
    url = f"/o/org-a/members/{membership.public_id}/role/"

    def changed() -> bool:
        current = _bobs_membership(org, bob)
        return current is not None and current.role == Role.ANALYST

    return Action("/o/org-a/members/", url, {"role": "analyst"}, changed)


def _member_remove(org: Organization, bob: User) -> Action:
    membership = _bobs_membership(org, bob)
    assert membership is not None
    url = f"/o/org-a/members/{membership.public_id}/remove/"
    return Action("/o/org-a/members/", url, {}, lambda: _bobs_membership(org, bob) is None)


MEMBER_ACTIONS = {
    "create an API key": _api_key_create,
    "rotate an API key": _api_key_rotate,
    "revoke an API key": _api_key_revoke,
    "create a webhook": _webhook_create,
    "rotate a webhook's secret": _webhook_rotate,
    "delete a webhook": _webhook_delete,
    "change a member's role": _member_role,
    "remove a member": _member_remove,
}


@pytest.mark.parametrize("make_action", MEMBER_ACTIONS.values(), ids=MEMBER_ACTIONS.keys())
def test_a_sensitive_action_asks_again_after_the_window_and_is_done_after_reauthenticating(
    make_action: Callable[[Organization, User], Action],
    clock: time_machine.Traveller,
    alice: User,
    bob: User,
    org_a: Organization,
) -> None:
    action = make_action(org_a, bob)
    client = log_in(alice)
    clock.shift(minutes(settings.HASHHUB_REAUTH_MINUTES + 1))

    refused = client.post(action.url, action.data, headers={"Referer": action.page})

    assert refused.status_code == 302
    assert refused["Location"] == reauth_url(MEMBER_REAUTH, action.page)
    assert not action.done()
    asked = client.get(refused["Location"])
    assert asked.status_code == 200
    assert "nothing was changed" in asked.content.decode()

    back = reauthenticate_with_password(client, action.page)

    assert back.status_code == 302 and back["Location"] == action.page
    assert not action.done()  # the refused POST is not replayed: the member does it again
    client.post(action.url, action.data, headers={"Referer": action.page})
    assert action.done()


@pytest.mark.parametrize("make_action", MEMBER_ACTIONS.values(), ids=MEMBER_ACTIONS.keys())
def test_a_sensitive_action_within_the_window_of_the_login_is_not_asked(
    make_action: Callable[[Organization, User], Action],
    clock: time_machine.Traveller,
    alice: User,
    bob: User,
    org_a: Organization,
) -> None:
    action = make_action(org_a, bob)
    client = log_in(alice)
    clock.shift(minutes(settings.HASHHUB_REAUTH_MINUTES - 1))

    response = client.post(action.url, action.data, headers={"Referer": action.page})

    assert not response.get("Location", "").startswith(MEMBER_REAUTH)
    assert action.done()


def test_the_window_is_counted_from_the_last_reauthentication(
    clock: time_machine.Traveller, alice: User, org_a: Organization
) -> None:
    client = log_in(alice)
    clock.shift(minutes(settings.HASHHUB_REAUTH_MINUTES + 1))
    reauthenticate_with_password(client, "/o/org-a/keys/")
    clock.shift(minutes(settings.HASHHUB_REAUTH_MINUTES - 1))
    assert client.post("/o/org-a/keys/", {"name": "k1", "scopes": ["match"]}).status_code == 201
    clock.shift(minutes(2))
    refused = client.post("/o/org-a/keys/", {"name": "k2", "scopes": ["match"]})
    assert refused["Location"].startswith(MEMBER_REAUTH)
    assert _key_by_name(org_a, "k2") is None


def test_the_pages_themselves_do_not_ask(
    clock: time_machine.Traveller, alice: User, org_a: Organization
) -> None:
    client = log_in(alice)
    clock.shift(minutes(settings.HASHHUB_REAUTH_MINUTES + 1))
    for page in ("/o/org-a/keys/", "/o/org-a/webhooks/", "/o/org-a/members/", "/o/org-a/settings/"):
        assert client.get(page).status_code == 200, page


def test_a_second_factor_also_confirms_it_is_the_member(
    clock: time_machine.Traveller, alice: User, org_a: Organization
) -> None:
    TOTP.activate(alice, ALICE_TOTP_SECRET)
    client = log_in(alice, totp_secret=ALICE_TOTP_SECRET)
    clock.shift(minutes(settings.HASHHUB_REAUTH_MINUTES + 1))
    data = {"name": "pipeline", "scopes": ["match"]}
    assert client.post("/o/org-a/keys/", data)["Location"].startswith(MEMBER_REAUTH)

    back = reauthenticate_with_code(client, ALICE_TOTP_SECRET, "/o/org-a/keys/")

    assert back["Location"] == "/o/org-a/keys/"
    assert client.post("/o/org-a/keys/", data).status_code == 201


def test_an_emailed_code_is_never_a_way_to_reauthenticate(
    clock: time_machine.Traveller, alice: User, org_a: Organization
) -> None:
    client = log_in(alice)
    clock.shift(minutes(settings.HASHHUB_REAUTH_MINUTES + 1))
    refused = client.post("/o/org-a/keys/", {"name": "pipeline", "scopes": ["match"]})
    page = client.get(refused["Location"]).content.decode()
    assert "/accounts/reauthenticate/code/" not in page
    assert client.post("/accounts/reauthenticate/code/").status_code == 403


def test_a_foreign_referer_is_not_where_the_member_comes_back_to(
    clock: time_machine.Traveller, alice: User, bob: User, org_a: Organization
) -> None:
    action = _member_remove(org_a, bob)
    client = log_in(alice)
    clock.shift(minutes(settings.HASHHUB_REAUTH_MINUTES + 1))
    refused = client.post(action.url, headers={"Referer": "https://evil.example/phish"})
    assert refused["Location"] == reauth_url(MEMBER_REAUTH, "/")
    assert not action.done()


# --- the organisation's two-factor requirement ----------------------------------------------


@pytest.fixture
def org_requiring_mfa(org_a: Organization, alice: User) -> Organization:
    org_a.require_mfa = True
    org_a.save(update_fields=["require_mfa"])
    TOTP.activate(alice, ALICE_TOTP_SECRET)
    return org_a


def test_turning_required_two_factor_off_asks_again(
    clock: time_machine.Traveller, alice: User, org_requiring_mfa: Organization
) -> None:
    client = log_in(alice, totp_secret=ALICE_TOTP_SECRET)
    clock.shift(minutes(settings.HASHHUB_REAUTH_MINUTES + 1))
    page = "/o/org-a/settings/"

    refused = client.post(page, {"name": "Org A"}, headers={"Referer": page})

    assert refused["Location"] == reauth_url(MEMBER_REAUTH, page)
    org_requiring_mfa.refresh_from_db()
    assert org_requiring_mfa.require_mfa
    assert "org.settings_changed" not in audit_actions()

    reauthenticate_with_code(client, ALICE_TOTP_SECRET, page)
    assert client.post(page, {"name": "Org A"})["Location"] == page
    org_requiring_mfa.refresh_from_db()
    assert not org_requiring_mfa.require_mfa


def test_other_settings_changes_do_not_ask(
    clock: time_machine.Traveller, alice: User, org_requiring_mfa: Organization
) -> None:
    client = log_in(alice, totp_secret=ALICE_TOTP_SECRET)
    clock.shift(minutes(settings.HASHHUB_REAUTH_MINUTES + 1))
    page = "/o/org-a/settings/"

    renamed = client.post(page, {"name": "Org A Renamed", "require_mfa": "on"})

    assert renamed["Location"] == page
    org_requiring_mfa.refresh_from_db()
    assert org_requiring_mfa.name == "Org A Renamed" and org_requiring_mfa.require_mfa


def test_turning_required_two_factor_on_does_not_ask(
    clock: time_machine.Traveller, alice: User, org_a: Organization
) -> None:
    client = log_in(alice)
    clock.shift(minutes(settings.HASHHUB_REAUTH_MINUTES + 1))
    assert client.post("/o/org-a/settings/", {"name": "Org A", "require_mfa": "on"})[
        "Location"
    ] == ("/o/org-a/settings/")
    org_a.refresh_from_db()
    assert org_a.require_mfa


# --- staff ----------------------------------------------------------------------------------------


def _approve(pending: Organization, other: Organization) -> Action:
    def approved() -> bool:
        pending.refresh_from_db()
        return pending.approved

    url = f"/staff/organizations/{pending.slug}/approve/"
    return Action("/staff/organizations/", url, {"approved": "1"}, approved)


def _reveal(pending: Organization, org: Organization) -> Action:
    with scope(organization=org.pk):
        hash_list = list_create(org=org, name="Shared", category="csam", actor=SYSTEM)
        list_visibility_set(hash_list=hash_list, visibility="anonymous", actor=SYSTEM)
    page = f"/staff/lists/?list={hash_list.public_id}"
    url = f"/staff/lists/{hash_list.public_id}/reveal/"
    return Action(
        page,
        url,
        {"reason": "a court order"},
        lambda: "list.owner_revealed" in audit_actions(),
    )


def _add_source(pending: Organization, org: Organization) -> Action:
    data = {
        "name": "Industry feed",
        "kind": "feed",
        "default_category": "csam",
        "access": "granted",
        "interval_minutes": "60",
        "description": "",
        "config": '{"url": "https://feeds.example.org/hashes.csv", "mode": "delta"}',
    }
    done = Source.objects.filter(name="Industry feed").exists
    return Action("/staff/sources/", "/staff/sources/", data, done)


def _grant(pending: Organization, org: Organization) -> Action:
    from lists.sources.services import source_create

    source = source_create(
        name="Gated feed",
        kind="feed",
        config={"url": "https://feeds.example.org/hashes.csv"},
        actor=SYSTEM,
    )
    page = f"/staff/sources/{source.public_id}/entitlements/"
    url = f"{page}orgs/{org.slug}/"
    done = SourceEntitlement.objects.filter(source=source, organization=org).exists
    return Action(page, url, {"granted": "1"}, done)


STAFF_ACTIONS = {
    "approve an organisation": _approve,
    "reveal an anonymous owner": _reveal,
    "add a source": _add_source,
    "grant a source": _grant,
}


@pytest.fixture
def pending_org(db: None) -> Organization:
    return OrganizationFactory.create(name="Pending Org", slug="pending", approved=False)


@pytest.mark.parametrize("make_action", STAFF_ACTIONS.values(), ids=STAFF_ACTIONS.keys())
def test_a_staff_action_needs_the_second_factor_within_the_window(
    make_action: Callable[[Organization, Organization], Action],
    clock: time_machine.Traveller,
    steve: User,
    pending_org: Organization,
    org_a: Organization,
) -> None:
    action = make_action(pending_org, org_a)
    client = log_in(steve, totp_secret=STAFF_TOTP_SECRET)
    clock.shift(minutes(settings.HASHHUB_STAFF_REAUTH_MINUTES + 1))

    refused = client.post(action.url, action.data, headers={"Referer": action.page})

    assert refused.status_code == 302
    assert refused["Location"] == reauth_url(STAFF_REAUTH, action.page)
    assert not action.done()
    asked = client.get(refused["Location"]).content.decode()
    assert "nothing was changed" in asked

    back = reauthenticate_with_code(client, STAFF_TOTP_SECRET, action.page)

    assert back["Location"] == action.page
    assert client.get(action.page).status_code == 200
    assert not action.done()
    client.post(action.url, action.data, headers={"Referer": action.page})
    assert action.done()


@pytest.mark.parametrize("make_action", STAFF_ACTIONS.values(), ids=STAFF_ACTIONS.keys())
def test_a_staff_action_right_after_logging_in_with_two_factor_is_done(
    make_action: Callable[[Organization, Organization], Action],
    clock: time_machine.Traveller,
    steve: User,
    pending_org: Organization,
    org_a: Organization,
) -> None:
    action = make_action(pending_org, org_a)
    client = log_in(steve, totp_secret=STAFF_TOTP_SECRET)
    clock.shift(minutes(settings.HASHHUB_STAFF_REAUTH_MINUTES - 1))

    response = client.post(action.url, action.data, headers={"Referer": action.page})

    assert not response.get("Location", "").startswith(STAFF_REAUTH)
    assert action.done()


def test_staff_pages_ask_for_the_second_factor_again_after_the_window(
    clock: time_machine.Traveller, steve: User
) -> None:
    client = log_in(steve, totp_secret=STAFF_TOTP_SECRET)
    clock.shift(minutes(settings.HASHHUB_STAFF_REAUTH_MINUTES - 1))
    assert client.get("/staff/organizations/?pending=1").status_code == 200
    clock.shift(minutes(2))

    asked = client.get("/staff/organizations/?pending=1")

    assert asked["Location"] == reauth_url(STAFF_REAUTH, "/staff/organizations/?pending=1")
    back = reauthenticate_with_code(client, STAFF_TOTP_SECRET, "/staff/organizations/?pending=1")
    assert back["Location"] == "/staff/organizations/?pending=1"
    assert client.get(back["Location"]).status_code == 200


def test_a_staff_password_alone_does_not_renew_the_window(
    clock: time_machine.Traveller, steve: User
) -> None:
    client = log_in(steve, totp_secret=STAFF_TOTP_SECRET)
    clock.shift(minutes(settings.HASHHUB_STAFF_REAUTH_MINUTES + 1))

    reauthenticate_with_password(client, "/staff/organizations/")

    asked = client.get("/staff/organizations/")
    assert asked["Location"].startswith(STAFF_REAUTH)


def test_staff_without_two_factor_are_sent_to_set_it_up_and_nothing_is_done(
    clock: time_machine.Traveller, pending_org: Organization
) -> None:
    sam = make_staff("sam@example.test", mfa=False)
    client = log_in(sam)
    action = _approve(pending_org, pending_org)

    page = client.get("/staff/organizations/")
    refused = client.post(action.url, action.data, headers={"Referer": action.page})

    assert page["Location"] == "/account/mfa-required/"
    assert refused["Location"] == "/account/mfa-required/"
    assert not action.done()
    setup = client.get("/account/mfa-required/").content.decode()
    assert "Hub staff pages" in setup
    assert "/accounts/2fa/totp/activate/" in setup

    # With an authenticator app set up, staff confirm with it and get in.
    TOTP.activate(sam, STAFF_TOTP_SECRET)
    asked = client.get("/staff/organizations/")
    assert asked["Location"].startswith(STAFF_REAUTH)
    reauthenticate_with_code(client, STAFF_TOTP_SECRET, "/staff/organizations/")
    client.post(action.url, action.data)
    assert action.done()


def test_without_the_staff_two_factor_setting_a_recent_password_is_enough(
    clock: time_machine.Traveller, settings: Any, pending_org: Organization
) -> None:
    settings.HASHHUB_STAFF_REQUIRE_MFA = False
    sam = make_staff("sam@example.test", mfa=False)
    client = log_in(sam)
    action = _approve(pending_org, pending_org)
    assert client.get("/staff/organizations/").status_code == 200
    clock.shift(minutes(settings.HASHHUB_STAFF_REAUTH_MINUTES + 1))

    refused = client.post(action.url, action.data, headers={"Referer": action.page})

    assert refused["Location"] == reauth_url(MEMBER_REAUTH, action.page)
    assert not action.done()
    reauthenticate_with_password(client, action.page)
    client.post(action.url, action.data)
    assert action.done()


def test_an_htmx_poll_of_a_stale_staff_page_loads_the_reauthentication_page_whole(
    clock: time_machine.Traveller, steve: User
) -> None:
    client = log_in(steve, totp_secret=STAFF_TOTP_SECRET)
    clock.shift(minutes(settings.HASHHUB_STAFF_REAUTH_MINUTES + 1))

    response = client.get(
        "/staff/organizations/",
        headers={"HX-Request": "true", "HX-Current-URL": "http://testserver/staff/health/"},
    )

    assert response.status_code == 200
    assert response["HX-Redirect"] == reauth_url(STAFF_REAUTH, "/staff/health/")
