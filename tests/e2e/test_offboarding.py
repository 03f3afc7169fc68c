"""An owner deletes an organisation in the web UI; its subscribers' matches and export lose its
lists at once, its key is refused and its pages are gone (README, "Organisation offboarding").

Hotel shares an open list to which India subscribes; both are made by an administrator with the
documented commands. Hotel's owner logs in, is refused with a wrong confirmation, then types the
short name and deletes it.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.helpers import Api, Browser, RunningHub, random_hash

pytestmark = pytest.mark.e2e

OWNER_EMAIL = "owner@gone-hotel.example"
SCOPES = "match,lists:read,lists:write,lists:admin,export"


def _org_with_key(hub: RunningHub, name: str, slug: str) -> Api:
    hub.manage("createorg", "--name", name, "--slug", slug, "--approve")
    key = hub.manage("createapikey", "--org", slug, "--name", "e2e", "--scopes", SCOPES)
    return hub.api(key.stdout.strip())


@pytest.fixture(scope="module")
def password() -> str:
    return secrets.token_urlsafe(18)


@pytest.fixture(scope="module")
def hotel_and_india(hub: RunningHub, password: str) -> Iterator[tuple[Api, Api]]:
    hotel = _org_with_key(hub, "Hotel Hosting", "gone-hotel")
    india = _org_with_key(hub, "India Images", "gone-india")
    hub.manage(
        "createmember", "--org", "gone-hotel", "--email", OWNER_EMAIL, "--role", "owner",
        "--password-env", "E2E_HOTEL_PASSWORD", env={"E2E_HOTEL_PASSWORD": password},
    )  # fmt: skip
    yield hotel, india
    hotel.close()
    india.close()


def test_an_owner_deletes_the_organisation_and_subscribers_lose_its_lists_at_once(
    hub: RunningHub, hotel_and_india: tuple[Api, Api], password: str
) -> None:
    hotel, india = hotel_and_india
    shared = hotel.call(
        "POST", "/api/v1/lists", json={"name": "Hotel shared", "category": "csam"}, expect=201
    )["id"]
    hashes = [random_hash("pdq"), random_hash("md5")]
    hotel.add(shared, hashes)
    hotel.call("PATCH", f"/api/v1/lists/{shared}", json={"visibility": "open"})
    india.call("PUT", f"/api/v1/lists/{shared}/subscription")
    held = {(shared, kind, value) for kind, value in hashes}
    assert india.exact_matches(hashes) == held
    assert held <= india.export_replay()

    browser = Browser(hub.url)
    try:
        assert browser.log_in(OWNER_EMAIL, password) == "/o/gone-hotel/"
        settings = browser.http.get("/o/gone-hotel/settings/")
        assert "Delete organisation" in settings.text
        token = browser.csrf_token("/o/gone-hotel/settings/")
        wrong = browser.http.post(
            "/o/gone-hotel/settings/delete/",
            data={"csrfmiddlewaretoken": token, "confirm": "gone-hotel!"},
        )
        assert wrong.headers["location"] == "/o/gone-hotel/settings/"
        assert india.exact_matches(hashes) == held  # nothing happened

        done = browser.http.post(
            "/o/gone-hotel/settings/delete/",
            data={"csrfmiddlewaretoken": token, "confirm": "gone-hotel"},
        )
        assert done.status_code == 302
        assert done.headers["location"] == "/"
        assert browser.http.get("/o/gone-hotel/").status_code == 404
    finally:
        browser.close()

    assert india.exact_matches(hashes) == set()
    assert not held & india.export_replay()
    refused = httpx.get(f"{hub.url}/api/v1/me", headers=hotel.http.headers)
    assert refused.status_code == 401
