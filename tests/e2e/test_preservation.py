"""Preservation holds by hand on a hub started as `make run` does (issue 21).

Papa, an organisation made with the documented commands, keeps a random MD5 in its own CSAM list
and matches it with a content_ref. An analyst holds the detection from its page (days and a
reason); the API then says it is held and until when, and lists the hold. The platform places a
second hold by API and releases it; the analyst releases the first from the page. Then nothing
holds the detection, and the dashboard's activity tells what happened.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

import pytest

from tests.e2e.helpers import Api, Browser, RunningHub

pytestmark = pytest.mark.e2e

SCOPES = "match,lists:write,review"
ANALYST_EMAIL = "papa-analyst@example.test"


def test_an_analyst_holds_a_detection_for_preservation_and_releases_it(hub: RunningHub) -> None:
    hub.manage("createorg", "--name", "Papa Pictures", "--slug", "papa", "--approve")
    password = secrets.token_urlsafe(18)
    hub.manage(
        "createmember", "--org", "papa", "--email", ANALYST_EMAIL, "--role", "analyst",
        "--password-env", "E2E_PAPA_PASSWORD", env={"E2E_PAPA_PASSWORD": password},
    )  # fmt: skip
    key = hub.manage("createapikey", "--org", "papa", "--name", "e2e", "--scopes", SCOPES)
    papa: Api = hub.api(key.stdout.strip())
    browser = Browser(hub.url)
    try:
        value = secrets.token_hex(16)
        papa.add(papa.list_id("CSAM"), [("md5", value)])
        matched = papa.call(
            "POST",
            "/api/v1/match",
            json={"hashes": [{"type": "md5", "value": value}], "content_ref": "papa/clip-3"},
        )
        detection_id = matched["detection"]
        assert detection_id
        before = papa.call("GET", f"/api/v1/detections/{detection_id}")
        assert before["preservation"] == {"held": False, "until": None}

        assert browser.log_in(ANALYST_EMAIL, password) == "/o/papa/"
        page = f"/o/papa/detections/{detection_id}/"
        token = browser.csrf_token(page)
        placed = browser.http.post(
            f"{page}holds/",
            data={"csrfmiddlewaretoken": token, "days": "45", "reason": "law enforcement request"},
        )
        assert placed.status_code == 302, placed.text[:2000]
        shown = browser.http.get(page).text
        assert "held for preservation" in shown and "law enforcement request" in shown

        held = papa.call("GET", f"/api/v1/detections/{detection_id}")["preservation"]
        assert held["held"] is True
        until = datetime.fromisoformat(held["until"])
        assert timedelta(days=44) < until - datetime.fromisoformat(before["created"])
        [by_page] = papa.call("GET", f"/api/v1/detections/{detection_id}/holds")["holds"]
        assert (by_page["reason"], by_page["placed_by"], by_page["active"]) == (
            "law enforcement request",
            ANALYST_EMAIL,
            True,
        )

        by_api = papa.call(
            "POST", f"/api/v1/detections/{detection_id}/holds", json={"days": 7}, expect=201
        )
        released = papa.call(
            "POST", f"/api/v1/detections/{detection_id}/holds/{by_api['id']}/release"
        )
        assert released["active"] is False
        papa.call(
            "POST",
            f"/api/v1/detections/{detection_id}/holds/{by_api['id']}/release",
            expect=409,
        )

        token = browser.csrf_token(page)
        freed = browser.http.post(
            f"{page}holds/{by_page['id']}/release/", data={"csrfmiddlewaretoken": token}
        )
        assert freed.status_code == 302, freed.text[:2000]
        after = papa.call("GET", f"/api/v1/detections/{detection_id}")["preservation"]
        assert after == {"held": False, "until": None}
        holds = papa.call("GET", f"/api/v1/detections/{detection_id}/holds")["holds"]
        assert sorted(h["active"] for h in holds) == [False, False]

        # Another organisation's key finds neither the detection nor its holds.
        hub.manage("createorg", "--name", "Quebec Media", "--slug", "papa-q", "--approve")
        q_key = hub.manage("createapikey", "--org", "papa-q", "--name", "q", "--scopes", SCOPES)
        quebec: Api = hub.api(q_key.stdout.strip())
        try:
            quebec.call("GET", f"/api/v1/detections/{detection_id}/holds", expect=404)
            quebec.call("POST", f"/api/v1/detections/{detection_id}/holds", json={}, expect=404)
        finally:
            quebec.close()
    finally:
        browser.close()
        papa.close()
