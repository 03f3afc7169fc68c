"""A sensitive action after a while: the hub asks for the password again, then lets it happen.

Alice logs in, leaves the API keys page open past HASHHUB_REAUTH_MINUTES, and creates a key: she is
sent to confirm her password, nothing is created, and she comes back to the keys page to create
it. The live server runs in this process, so moving Python's clock moves the hub's.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING

import pytest
import time_machine
from django.conf import settings
from django_scopes import scopes_disabled
from playwright.sync_api import Page, expect

from hub.models import ApiKey, User
from tests.browser.helpers import log_in, reauthenticate, submit, watch_for_problems
from tests.factories import PASSWORD

if TYPE_CHECKING:
    from pytest_django.live_server_helper import LiveServer

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def keys_named(name: str) -> int:
    with scopes_disabled():
        return ApiKey.objects.filter(name=name).count()


def test_a_member_confirms_her_password_before_creating_a_key_after_a_while(
    page: Page, live_server: LiveServer, alice: User
) -> None:
    problems = watch_for_problems(page)
    log_in(page, alice.email, PASSWORD)
    expect(page).to_have_url(re.compile(r"/o/org-a/$"))
    page.goto("/o/org-a/keys/")

    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=settings.HASHHUB_REAUTH_MINUTES + 1)
    with time_machine.travel(later, tick=True):
        page.locator("input[name=name]").fill("upload pipeline")
        submit(page, "Create key")
        expect(page).to_have_url(
            re.compile(r"/accounts/reauthenticate/\?next=%2Fo%2Forg-a%2Fkeys%2F$")
        )
        expect(page.locator(".messages")).to_contain_text("nothing was changed")
        assert keys_named("upload pipeline") == 0

        reauthenticate(page, PASSWORD)
        expect(page).to_have_url(re.compile(r"/o/org-a/keys/$"))
        page.locator("input[name=name]").fill("upload pipeline")
        submit(page, "Create key")
        expect(page.locator("#new-secret")).to_contain_text("hh_")
        assert keys_named("upload pipeline") == 1

    assert problems == []
