"""Sign-up, verification, login rate limits and the MFA requirement (allauth behind our adapter)."""

from __future__ import annotations

import re

import pyotp
import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import TOTP
from django.core import mail
from django.test import Client

from hub.models import Organization, User
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db


def test_signup_requires_email_verification_before_login() -> None:
    client = Client()
    response = client.post(
        "/accounts/signup/",
        {
            "email": "newbie@example.test",
            "password1": "Sturdy-passphrase-7",
            "password2": "Sturdy-passphrase-7",
        },
    )
    assert response.status_code == 302
    assert response["Location"] == "/accounts/confirm-email/"
    assert len(mail.outbox) == 1
    link = re.search(r"/accounts/confirm-email/[^/\s]+/", str(mail.outbox[0].body))
    assert link is not None
    # Before confirming, logging in leads back to the verification page, not into the hub.
    login = Client().post(
        "/accounts/login/", {"login": "newbie@example.test", "password": "Sturdy-passphrase-7"}
    )
    assert login["Location"] == "/accounts/confirm-email/"
    confirmed = client.post(link.group(0))
    assert confirmed.status_code == 302
    login = Client().post(
        "/accounts/login/", {"login": "newbie@example.test", "password": "Sturdy-passphrase-7"}
    )
    assert login.status_code == 302 and login["Location"] == "/"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (
            {
                "email": "not-an-email",
                "password1": "Sturdy-passphrase-7",
                "password2": "Sturdy-passphrase-7",
            },
            "email",
        ),
        ({"email": "a@example.test", "password1": "short", "password2": "short"}, "password1"),
        (
            {
                "email": "a@example.test",
                "password1": "Sturdy-passphrase-7",
                "password2": "different-7-x",
            },
            "password2",
        ),
    ],
)
def test_signup_rejects_bad_input(data: dict[str, str], field: str) -> None:
    response = Client().post("/accounts/signup/", data)
    assert response.status_code == 400
    assert field in response.context["form"].errors
    assert not User.objects.filter(email=data["email"]).exists()


@pytest.mark.clock
def test_failed_logins_are_rate_limited(alice: User) -> None:
    client = Client()
    for _ in range(5):
        response = client.post(
            "/accounts/login/", {"login": alice.email, "password": "wrong password"}
        )
        assert response.status_code == 400
    blocked = client.post("/accounts/login/", {"login": alice.email, "password": PASSWORD})
    assert blocked.status_code in (400, 429)
    assert "Too many failed login attempts" in blocked.content.decode()
    assert "_auth_user_id" not in client.session


@pytest.mark.clock
def test_login_with_totp_asks_for_the_code(alice: User) -> None:
    secret = pyotp.random_base32()
    TOTP.activate(alice, secret)
    client = Client()
    response = client.post("/accounts/login/", {"login": alice.email, "password": PASSWORD})
    assert response["Location"] == "/accounts/2fa/authenticate/"
    assert "_auth_user_id" not in client.session
    wrong = client.post("/accounts/2fa/authenticate/", {"code": "000000"})
    assert wrong.status_code == 400
    ok = client.post("/accounts/2fa/authenticate/", {"code": pyotp.TOTP(secret).now()})
    assert ok.status_code == 302
    assert client.session["_auth_user_id"] == str(alice.pk)


def test_an_org_requiring_mfa_sends_members_without_it_to_set_it_up(
    alice: User, alice_client: Client, bob_client: Client, org_a: Organization
) -> None:
    org_a.require_mfa = True
    org_a.save()
    response = bob_client.get("/o/org-a/")
    assert response.status_code == 302
    assert response["Location"] == "/account/mfa-required/"
    page = bob_client.get(response["Location"])
    assert "/accounts/2fa/totp/activate/" in page.content.decode()
    # With MFA set up, the same member gets in.
    TOTP.activate(alice, pyotp.random_base32())
    assert Authenticator.objects.filter(user=alice).exists()
    assert alice_client.get("/o/org-a/").status_code == 200


def test_an_org_not_requiring_mfa_lets_members_in(bob_client: Client) -> None:
    assert bob_client.get("/o/org-a/").status_code == 200


def test_password_reset_mails_a_link_that_sets_a_new_password(alice: User) -> None:
    client = Client()
    response = client.post("/accounts/password/reset/", {"email": alice.email})
    assert response.status_code == 302
    assert len(mail.outbox) == 1
    link = re.search(r"/accounts/password/reset/key/[^/\s]+/", str(mail.outbox[0].body))
    assert link is not None
    form_page = client.get(link.group(0), follow=True)
    assert form_page.status_code == 200
    new = "A-brand-new-passphrase-9"
    done = client.post(form_page.redirect_chain[-1][0], {"password1": new, "password2": new})
    assert done.status_code == 302
    alice.refresh_from_db()
    assert alice.check_password(new)


def test_account_security_events_are_audited_without_an_organisation(alice: User) -> None:
    from django_scopes import scopes_disabled

    from hub.models import AuditEvent

    client = Client()
    client.post("/accounts/login/", {"login": alice.email, "password": PASSWORD})
    TOTP.activate(alice, pyotp.random_base32())
    from allauth.mfa import signals

    signals.authenticator_added.send(
        sender=Authenticator,
        request=None,
        user=alice,
        authenticator=Authenticator.objects.get(user=alice),
    )
    with scopes_disabled():
        actions = list(
            AuditEvent.objects.filter(actor_user=alice, organization=None).values_list(
                "action", flat=True
            )
        )
    assert "account.logged_in" in actions
    assert "account.mfa_added" in actions
