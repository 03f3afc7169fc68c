"""Review by API on a hub started as `make run` does (issue 19): a platform matches, reads the
detection with `GET /api/v1/detections`, confirms it with `POST /api/v1/detections/{id}/review`,
and then finds the hash in its own CSAM list and the `detection.reviewed` webhook at its
receiver.

Lima, an organisation made with the documented commands, keeps a random MD5 in its own SE list
(through the API), sets a link template and registers a webhook on its web pages (a receiver on
127.0.0.1), then matches that hash with a content_ref. Confirming into CSAM adds the hash to
Lima's CSAM list, which is what confirm does.

The hub is the session's second one (``local_hub``): its operator allows webhooks to 127.0.0.1
(HASHHUB_WEBHOOK_ALLOWED_NETWORKS, as the README says), which the shared hub does not.
"""

from __future__ import annotations

import json
import secrets

import pytest

from tests.e2e.helpers import Api, Browser, LocalHub, LocalServer, wait_for

pytestmark = pytest.mark.e2e

SCOPES = "match,lists:read,lists:write,review"
OWNER_EMAIL = "lima-owner@example.test"
TEMPLATE = "https://moderation.example/item/{content_ref}"
WAIT_SECONDS = 120  # a delivery is queued at commit; the webhooks worker sends it


def test_a_platform_confirms_a_detection_by_api_and_hears_of_it_by_webhook(
    local_hub: LocalHub,
) -> None:
    hub = local_hub
    hub.manage("createorg", "--name", "Lima Photos", "--slug", "lima", "--approve")
    password = secrets.token_urlsafe(18)
    hub.manage(
        "createmember", "--org", "lima", "--email", OWNER_EMAIL, "--role", "owner",
        "--password-env", "E2E_LIMA_PASSWORD", env={"E2E_LIMA_PASSWORD": password},
    )  # fmt: skip
    key = hub.manage("createapikey", "--org", "lima", "--name", "e2e", "--scopes", SCOPES)
    lima: Api = hub.api(key.stdout.strip())
    browser = Browser(hub.url)
    try:
        with LocalServer() as receiver:
            assert browser.log_in(OWNER_EMAIL, password) == "/o/lima/"
            made = browser.post_form(
                "/o/lima/webhooks/", {"url": f"{receiver.url}/hooks/lima", "description": "e2e"}
            )
            assert made.status_code == 201, made.text[:2000]
            saved = browser.post_form("/o/lima/review/settings/", {"link_template": TEMPLATE})
            assert saved.status_code == 302, saved.text[:2000]

            value = secrets.token_hex(16)
            lima.add(lima.list_id("SE"), [("md5", value)])
            csam = lima.list_id("CSAM")
            assert ("md5", value) not in lima.entries(csam)
            matched = lima.call(
                "POST",
                "/api/v1/match",
                json={"hashes": [{"type": "md5", "value": value}], "content_ref": "clip/7"},
            )
            detection_id = matched["detection"]
            assert detection_id

            listed = lima.call("GET", "/api/v1/detections", params={"status": "new"})
            [detection] = [d for d in listed["detections"] if d["id"] == detection_id]
            assert detection["content_ref"] == "clip/7"
            assert detection["content_link"] == "https://moderation.example/item/clip%2F7"
            assert detection["categories"] == ["se"]

            reviewed = lima.call(
                "POST",
                f"/api/v1/detections/{detection_id}/review",
                json={"action": "confirm", "category": "csam", "note": "seen by the platform"},
            )
            assert (reviewed["outcome"], reviewed["list"], reviewed["added"]) == (
                "confirm",
                csam,
                1,
            )
            assert reviewed["detection"]["status"] == "confirmed"
            assert ("md5", value) in lima.entries(csam)
            again = lima.call("GET", f"/api/v1/detections/{detection_id}")
            assert (again["status"], again["review_note"]) == ("confirmed", "seen by the platform")

            events = wait_for(lambda: receiver.events("detection.reviewed"), WAIT_SECONDS)
            assert events, f"no detection.reviewed webhook arrived:\n{hub.log_tail()}"
            [event] = events
            assert event["detection"]["id"] == detection_id
            assert event["review"]["outcome"] == "confirmed"
            assert event["review"]["category"] == "csam"
            assert event["organization"] == "lima"
            assert OWNER_EMAIL not in json.dumps(event)  # never who reviewed
            created = wait_for(lambda: receiver.events("detection.created"), WAIT_SECONDS)
            assert [e["detection"]["id"] for e in created] == [detection_id]
    finally:
        browser.close()
        lima.close()
