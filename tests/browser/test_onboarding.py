"""A new member's first visit, end to end in a real browser.

Dana signs up, verifies her e-mail, logs in, creates her organisation, turns on an authenticator
app, proves the next login asks for it, creates an API key and looks at her dashboard.
"""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING

import pyotp
import pytest
from allauth.mfa.models import Authenticator
from django.core.mail import EmailMessage
from playwright.sync_api import Page, Response, expect

from tests.browser.helpers import (
    ARTIFACTS,
    log_in,
    log_out,
    reauthenticate,
    submit,
    watch_for_problems,
)
from tests.totp import totp_code_for_a_new_window

if TYPE_CHECKING:
    from pytest_django.live_server_helper import LiveServer

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "Ledger-lantern-harbour-48"
CONFIRM_LINK = re.compile(r"https?://\S+/accounts/confirm-email/[^/\s]+/")


def confirmation_link(message: EmailMessage) -> str:
    match = CONFIRM_LINK.search(str(message.body))
    assert match is not None, f"no confirmation link in:\n{message.body}"
    return match.group(0)


def test_a_new_member_signs_up_verifies_enables_mfa_and_gets_an_api_key(
    page: Page, live_server: LiveServer, mailoutbox: list[EmailMessage]
) -> None:
    problems = watch_for_problems(page)
    email = f"dana-{uuid.uuid4().hex[:8]}@example.test"

    # 1. Sign up.
    page.goto("/accounts/signup/")
    page.locator("input[name=email]").fill(email)
    page.locator("input[name=password1]").fill(PASSWORD)
    page.locator("input[name=password2]").fill(PASSWORD)
    submit(page, "Sign Up")
    expect(page).to_have_url(re.compile(r"/accounts/confirm-email/$"))
    expect(page.locator("main")).to_contain_text("Verify Your Email Address")

    # 2. Verification is mandatory: until the link is followed, logging in leads back here.
    assert len(mailoutbox) == 1
    assert mailoutbox[-1].to == [email]
    link = confirmation_link(mailoutbox[-1])
    # The link must lead back to the hub that sent it, not to some configured default host.
    assert link.startswith(f"{live_server.url}/"), link
    log_in(page, email, PASSWORD)
    expect(page).to_have_url(re.compile(r"/accounts/confirm-email/$"))
    page.goto(link)
    expect(page.locator("main")).to_contain_text(email)
    submit(page, "Confirm")
    expect(page.locator("main")).to_contain_text(f"You have confirmed {email}.")

    # 3. Log in.
    log_in(page, email, PASSWORD)
    expect(page).to_have_url(re.compile(r"/orgs/new/$"))

    # 4. A member of nothing is sent to create an organisation.
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/orgs/new/$"))
    page.locator("input[name=name]").fill("Dana's Safety Desk")
    submit(page, "Create organisation")
    expect(page).to_have_url(re.compile(r"/o/danas-safety-desk/$"))
    expect(page.locator("main h1")).to_have_text("Dana's Safety Desk")
    org_url = "/o/danas-safety-desk/"

    # 5. Turn on an authenticator app. allauth first asks for the password again (a login alone
    # does not count as a recent re-authentication), then shows the secret in a disabled field.
    page.goto("/accounts/2fa/totp/activate/")
    expect(page).to_have_url(re.compile(r"/accounts/reauthenticate/\?next="))
    reauthenticate(page, PASSWORD)
    expect(page).to_have_url(re.compile(r"/accounts/2fa/totp/activate/$"))
    secret = page.locator("#authenticator_secret").input_value()
    assert re.fullmatch(r"[A-Z2-7]{32}", secret), secret
    totp = pyotp.TOTP(secret)
    code, activation_window = totp_code_for_a_new_window(totp)
    page.locator("input[name=code]").fill(code)
    submit(page, "Activate")
    # Activation hands out recovery codes at once.
    expect(page).to_have_url(re.compile(r"/accounts/2fa/recovery-codes/$"))
    recovery_codes = page.locator("#recovery_codes").input_value().split()
    assert len(recovery_codes) == 10
    page.goto("/accounts/2fa/")
    expect(page.locator("main")).to_contain_text(
        "Authentication using an authenticator app is active."
    )
    assert Authenticator.objects.filter(user__email=email, type=Authenticator.Type.TOTP).exists()

    # The next login asks for a code, refuses a wrong one and accepts a fresh one.
    log_out(page)
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    log_in(page, email, PASSWORD)
    expect(page).to_have_url(re.compile(r"/accounts/2fa/authenticate/$"))
    code, _window = totp_code_for_a_new_window(totp, after=activation_window)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    page.locator("input[name=code]").fill(wrong)
    submit(page, "Sign In")
    expect(page).to_have_url(re.compile(r"/accounts/2fa/authenticate/$"))
    expect(page.locator("main")).to_contain_text("Incorrect code")
    code, _window = totp_code_for_a_new_window(totp, after=activation_window)
    page.locator("input[name=code]").fill(code)
    submit(page, "Sign In")
    expect(page).to_have_url(re.compile(rf"{org_url}$"))

    # 6. Create an API key: its secret is shown once, then only its prefix.
    page.goto(f"{org_url}keys/")
    page.locator("input[name=name]").fill("upload pipeline (test)")
    page.locator("input[name=scopes][value=export]").check()
    with page.expect_response(
        lambda response: response.request.method == "POST" and response.url.endswith("/keys/")
    ) as created:
        submit(page, "Create key")
    response: Response = created.value
    assert response.status == 201
    assert response.headers["cache-control"] == "no-store"
    secret_key = page.locator("#new-secret").inner_text().strip()
    assert secret_key.startswith("hh_")
    prefix = secret_key.split("_")[1]
    # A fresh GET, not page.reload(): reloading a POST result would post the form again.
    page.goto(f"{org_url}keys/")
    expect(page.locator("#new-secret")).to_have_count(0)
    assert secret_key not in page.content()
    row = page.locator("tbody tr", has_text="upload pipeline (test)")
    expect(row).to_contain_text(f"hh_{prefix}_")
    expect(row).to_contain_text("match")
    expect(row).to_contain_text("export")

    # 7. The dashboard counts the key; keep a picture of it for people to look at.
    page.goto(org_url)
    expect(page.locator("main")).to_contain_text(re.compile(r"\b1\s+active API key\b"))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=ARTIFACTS / "dashboard.png", full_page=True)

    assert problems == []
