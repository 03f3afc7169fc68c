"""Hub staff set up two-factor before the staff pages, and confirm it before acting.

An administrator makes a staff member with `createmember --staff`. Logging in with the password
alone reaches the member pages but not the staff pages: those send the staff member to set up an
authenticator app, then ask for a code from it. With the code given, the staff member approves a
waiting organisation, and every staff page reachable by links answers without a server error.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from urllib.parse import quote

import pyotp
import pytest

from tests.e2e.helpers import Browser, RunningHub
from tests.totp import totp_code_for_a_new_window

pytestmark = pytest.mark.e2e

STAFF_EMAIL = "ops@hub.example"
SECRET_FIELD = re.compile(r'id="authenticator_secret"[^>]*value="([A-Z2-7]+)"')
CSRF_FIELD = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
CRAWL_LIMIT = 200


def csrf_token_of(html: str) -> str:
    found = CSRF_FIELD.search(html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


@pytest.fixture(scope="module")
def password() -> str:
    return secrets.token_urlsafe(18)


@pytest.fixture(scope="module")
def staff_member(hub: RunningHub, password: str) -> str:
    hub.manage("createorg", "--name", "Hub Operations", "--slug", "hub-ops", "--approve")
    hub.manage(
        "createmember", "--org", "hub-ops", "--email", STAFF_EMAIL, "--role", "owner",
        "--staff", "--password-env", "E2E_STAFF_PASSWORD", env={"E2E_STAFF_PASSWORD": password},
    )  # fmt: skip
    hub.manage("createorg", "--name", "Golf Games", "--slug", "golf")  # awaiting approval
    return STAFF_EMAIL


@pytest.fixture
def browser(hub: RunningHub) -> Iterator[Browser]:
    person = Browser(hub.url)
    yield person
    person.close()


def test_staff_set_up_two_factor_and_confirm_it_before_acting(
    browser: Browser, staff_member: str, password: str
) -> None:
    assert browser.log_in(staff_member, password) == "/o/hub-ops/"

    # The staff pages send a staff member without two-factor to set it up.
    pending = "/staff/organizations/?pending=1"
    assert browser.http.get(pending).headers["location"] == "/account/mfa-required/"
    setup = browser.http.get("/account/mfa-required/").text
    assert "Hub staff pages" in setup

    # Setting up the authenticator app asks for the password first (allauth), then a code.
    asked = browser.http.get("/accounts/2fa/totp/activate/").headers["location"]
    assert asked.startswith("/accounts/reauthenticate/?next=")
    confirmed = browser.post_form(asked, {"password": password})
    assert confirmed.headers["location"] == "/accounts/2fa/totp/activate/"
    # Each GET of the page makes a new secret: the code must answer the one this page shows.
    activation = browser.http.get("/accounts/2fa/totp/activate/").text
    found = SECRET_FIELD.search(activation)
    assert found, "the activation page shows no secret"
    totp = pyotp.TOTP(found.group(1))
    code, activation_window = totp_code_for_a_new_window(totp)
    activated = browser.http.post(
        "/accounts/2fa/totp/activate/",
        data={"csrfmiddlewaretoken": csrf_token_of(activation), "code": code},
    )
    assert activated.status_code == 302, activated.text[:2000]

    # A password re-authentication is not enough for staff pages: they ask for a code.
    asked = browser.http.get(pending).headers["location"]
    assert asked == f"/accounts/2fa/reauthenticate/?next={quote(pending, safe='')}"
    code, _window = totp_code_for_a_new_window(totp, after=activation_window)
    back = browser.post_form(asked, {"code": code})
    assert back.headers["location"] == pending
    listing = browser.http.get(pending)
    assert listing.status_code == 200 and "Golf Games" in listing.text

    # Approving the waiting organisation now works; it leaves the pending list.
    token = browser.csrf_token(pending)
    approved = browser.http.post(
        "/staff/organizations/golf/approve/",
        data={"csrfmiddlewaretoken": token, "approved": "1"},
        headers={"Referer": f"{browser.http.base_url}{pending}"},
    )
    assert approved.headers["location"] == "/staff/organizations/"
    assert "Golf Games is now approved." in browser.http.get(pending).text
    assert "Golf Games" not in browser.http.get(pending).text  # the message was shown once

    # Every page this staff member reaches by links, staff pages included, answers.
    crawl = browser.crawl("/staff/organizations/", limit=CRAWL_LIMIT)
    assert not crawl.failures, "\n".join(crawl.failures)
    staff_pages = [url for url in crawl.visited if url.startswith("/staff/")]
    assert any(url.startswith("/staff/sources/") for url in staff_pages), crawl.visited
