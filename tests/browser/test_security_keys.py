"""Security keys (WebAuthn), with Chromium's virtual authenticator standing in for the hardware."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest
from allauth.mfa.models import Authenticator
from playwright.sync_api import CDPSession, Page, expect

from hub.models import User
from tests.browser.helpers import log_in, log_out, reauthenticate, submit, watch_for_problems
from tests.factories import PASSWORD

if TYPE_CHECKING:
    from pytest_django.live_server_helper import LiveServer

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def plug_in_a_security_key(page: Page) -> tuple[CDPSession, str]:
    """Attach a virtual USB security key that answers every ceremony as if touched.

    The DevTools WebAuthn domain replaces the platform's authenticators for this page only, so a
    headless browser can register and use a key without hardware or any prompt.
    """
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable", {"enableUI": False})
    added = cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "usb",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    return cdp, added["authenticatorId"]


def test_a_member_registers_a_security_key_and_signs_in_with_it(
    page: Page, live_server: LiveServer, alice: User
) -> None:
    problems = watch_for_problems(page)
    cdp, authenticator_id = plug_in_a_security_key(page)

    log_in(page, alice.email, PASSWORD)
    expect(page).to_have_url(re.compile(r"/o/org-a/$"))

    page.goto("/accounts/2fa/webauthn/add/")
    expect(page).to_have_url(re.compile(r"/accounts/reauthenticate/\?next="))
    reauthenticate(page, PASSWORD)
    expect(page).to_have_url(re.compile(r"/accounts/2fa/webauthn/add/$"))
    page.locator("input[name=name]").fill("Alice's desk key")
    # "Add" runs the WebAuthn ceremony in JavaScript, then posts the credential itself.
    submit(page, "Add")
    # The first authenticator comes with recovery codes.
    expect(page).to_have_url(re.compile(r"/accounts/2fa/recovery-codes/$"))
    assert problems == []

    credentials = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator_id})
    assert len(credentials["credentials"]) == 1
    key = Authenticator.objects.get(user=alice, type=Authenticator.Type.WEBAUTHN)
    assert key.wrap().name == "Alice's desk key"
    page.goto("/accounts/2fa/")
    expect(page.locator("main")).to_contain_text("You have added 1 security key.")

    # The next login asks for the second factor, and the key answers it.
    log_out(page)
    log_in(page, alice.email, PASSWORD)
    expect(page).to_have_url(re.compile(r"/accounts/2fa/authenticate/$"))
    submit(page, "Use a security key")
    expect(page).to_have_url(re.compile(r"/o/org-a/$"))
    assert problems == []
