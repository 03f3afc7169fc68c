"""Retroactive matching on a hub started as `make run` does: a hash submitted today, listed by a
verified source tomorrow, raises a detection and a webhook naming the original request.

Kilo, an organisation made with the documented commands, turns retroactive matching on through
`PUT /api/v1/policy`, registers a webhook on its web pages (a receiver on 127.0.0.1), and
matches a random PDQ hash that nothing lists. Then an administrator registers a feed source
serving that hash (a CSV file from a local HTTP server) and fetches it with `fetchsource`. The
hub's worker finds the kept submission: a retroactive detection appears in
`GET /api/v1/detections` and the webhook arrives with the original request's time and
content_ref.

The hub is the session's second one (``local_hub``): its operator allows webhooks and sources
on 127.0.0.1 (HASHHUB_WEBHOOK_ALLOWED_NETWORKS, HASHHUB_SOURCE_ALLOWED_HOSTS, as the README
says), which the shared hub does not.
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime

import pytest

from tests.e2e.helpers import Api, Browser, LocalHub, LocalServer, wait_for

pytestmark = pytest.mark.e2e

SCOPES = "match,lists:read,lists:admin,review"
OWNER_EMAIL = "kilo-owner@example.test"
SOURCE = "Kilo Hotline Feed"
WAIT_SECONDS = 150  # beat runs the matcher every minute; a commit queues it at once


def _register_webhook(hub: LocalHub, password: str, url: str) -> None:
    browser = Browser(hub.url)
    try:
        assert browser.log_in(OWNER_EMAIL, password) == "/o/kilo/"
        sent = browser.post_form("/o/kilo/webhooks/", {"url": url, "description": "e2e"})
        assert sent.status_code == 201, sent.text[:2000]
        assert re.search(r"whsec_[\w-]+", sent.text), "the new secret is shown once"
    finally:
        browser.close()


def test_a_hash_listed_by_a_source_after_it_was_submitted_raises_a_retroactive_detection(
    local_hub: LocalHub,
) -> None:
    hub = local_hub
    hub.manage("createorg", "--name", "Kilo Video", "--slug", "kilo", "--approve")
    password = secrets.token_urlsafe(18)
    hub.manage(
        "createmember", "--org", "kilo", "--email", OWNER_EMAIL, "--role", "owner",
        "--password-env", "E2E_KILO_PASSWORD", env={"E2E_KILO_PASSWORD": password},
    )  # fmt: skip
    key = hub.manage("createapikey", "--org", "kilo", "--name", "e2e", "--scopes", SCOPES)
    kilo: Api = hub.api(key.stdout.strip())
    try:
        policy = kilo.call("PUT", "/api/v1/policy", json={"retroactive_days": 30})
        assert policy["retroactive_days"] == 30
        with LocalServer() as receiver:
            _register_webhook(hub, password, f"{receiver.url}/hooks/kilo")

            pdq = secrets.token_hex(32)
            before = datetime.now().astimezone()
            body = kilo.call(
                "POST",
                "/api/v1/match",
                json={"hashes": [{"type": "pdq", "value": pdq}], "content_ref": "kilo-clip-42"},
            )
            after = datetime.now().astimezone()
            assert body["results"][0]["matches"] == []
            assert body["detection"] is None

            with LocalServer(f"type,value\npdq,{pdq}\n".encode()) as feed:
                hub.manage(
                    "addsource", "--name", SOURCE, "--kind", "feed",
                    "--url", f"{feed.url}/hashes.csv", "--access", "all",
                )  # fmt: skip
                fetched = hub.manage("fetchsource", SOURCE)
                assert "succeeded" in fetched.stdout, fetched.stdout

            found = wait_for(
                lambda: kilo.call("GET", "/api/v1/detections", params={"retroactive": "true"})[
                    "detections"
                ],
                WAIT_SECONDS,
            )
            assert found, f"no retroactive detection appeared:\n{hub.log_tail()}"
            [detection] = found
            assert detection["content_ref"] == "kilo-clip-42"
            [result] = detection["matches"]
            [match] = result["matches"]
            assert (match["matched_value"], match["list"]["tier"]) == (pdq, "verified")
            assert match["list"]["contributor"] == SOURCE
            # Not a detection of an ordinary request.
            ordinary = kilo.call("GET", "/api/v1/detections", params={"retroactive": "false"})
            assert ordinary["detections"] == []

            events = wait_for(lambda: receiver.events("detection.created"), WAIT_SECONDS)
            assert events, f"no webhook arrived:\n{hub.log_tail()}"
            [event] = events
            sent = event["detection"]
            assert sent["id"] == detection["id"]
            assert sent["retroactive"] is True
            assert sent["content_ref"] == "kilo-clip-42"
            requested_at = datetime.fromisoformat(sent["requested_at"])
            assert before <= requested_at <= after
            assert datetime.fromisoformat(sent["created"]) > requested_at
    finally:
        kilo.close()
