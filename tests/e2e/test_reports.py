"""From detection to report on a hub started as `make run` does (issue 21).

Oscar, an organisation made with the documented commands, matches a synthetic picture (its MD5
is in Oscar's own SE list, so the match finds it), confirms the detection as CSAM by API (the
picture's hashes land in Oscar's CSAM list), opens a report with `POST /api/v1/reports`, files
it with the hotline's report id, and downloads the package in both profiles. An SE-confirmed
detection is refused a report, with the reason. Then an administrator registers a verified feed
(a CSV from a local HTTP server) that now lists the picture's SHA-256 and fetches it with
`fetchsource`: the hub's worker notices, Oscar's CSAM entry shows "now in <source>" (API and
list page), and the dashboard's report-to-listing chart names the source.

The hub is the session's second one (``local_hub``), whose operator allows sources on 127.0.0.1.
"""

from __future__ import annotations

import json
import re
import secrets
from datetime import datetime, timedelta

import pytest
from defusedxml import ElementTree

from tests.e2e.helpers import Api, Browser, LocalHub, LocalServer, synthetic_png, wait_for

pytestmark = pytest.mark.e2e

SCOPES = "match,lists:read,lists:write,review,reports"
OWNER_EMAIL = "report-oscar-owner@example.test"
SOURCE = "Oscar Hotline Feed"
UPLOADER = "uploader-8841@platform.example"
WAIT_SECONDS = 150  # beat runs the listing check every minute; a commit queues it at once


def _match_image(api: Api, data: bytes, **fields: str) -> dict:
    files = {"image": ("upload.png", data, "image/png")}
    return dict(api.call("POST", "/api/v1/match/image", files=files, data=fields))


def _confirmed_detection(api: Api, picture: bytes, content_ref: str, category: str) -> str:
    matched = _match_image(api, picture, content_ref=content_ref)
    detection_id = matched["detection"]
    assert detection_id, matched
    api.call(
        "POST",
        f"/api/v1/detections/{detection_id}/review",
        json={"action": "confirm", "category": category},
    )
    return str(detection_id)


def test_a_confirmed_detection_is_reported_downloaded_and_its_listing_charted(
    local_hub: LocalHub,
) -> None:
    hub = local_hub
    hub.manage("createorg", "--name", "Oscar Uploads", "--slug", "report-oscar", "--approve")
    password = secrets.token_urlsafe(18)
    hub.manage(
        "createmember", "--org", "report-oscar", "--email", OWNER_EMAIL, "--role", "owner",
        "--password-env", "E2E_OSCAR_PASSWORD", env={"E2E_OSCAR_PASSWORD": password},
    )  # fmt: skip
    key = hub.manage("createapikey", "--org", "report-oscar", "--name", "e2e", "--scopes", SCOPES)
    oscar: Api = hub.api(key.stdout.strip())
    browser = Browser(hub.url)
    try:
        picture = synthetic_png(seed=2101, size=(320, 320))
        hashes = _match_image(oscar, picture)["hashes"]
        md5, sha256 = hashes["md5"]["value"], hashes["sha256"]["value"]
        oscar.add(oscar.list_id("SE"), [("md5", md5)])

        # Confirmed as SE: removed, never reported, and the refusal says why.
        se_detection = _confirmed_detection(oscar, picture, "clip/se-1", "se")
        refused = oscar.call(
            "POST", "/api/v1/reports", expect=409, json={"detection": se_detection}
        )
        assert refused["error"]["code"] == "confirmed_as_se"
        assert "SE" in refused["error"]["message"]

        # Confirmed as CSAM: the picture's hashes are in Oscar's CSAM list; a report opens.
        detection_id = _confirmed_detection(oscar, picture, "clip/csam-7", "csam")
        csam = oscar.list_id("CSAM")
        assert ("sha256", sha256) in oscar.entries(csam)
        report = oscar.call(
            "POST",
            "/api/v1/reports",
            expect=201,
            json={
                "detection": detection_id,
                "uploader_ref": UPLOADER,
                "notes": "Reported by the trust & safety team.",
                "file_viewed_by_esp": True,
            },
        )
        report_id = report["id"]
        assert report["state"] == "draft"
        assert report["content_ref"] == "clip/csam-7"
        assert report["uploader_ref"] == UPLOADER

        # Filed ten days ago (the hotline's date), so the lag to today's listing is ~10 days.
        filed_at = (datetime.now().astimezone() - timedelta(days=10)).isoformat()
        filed = oscar.call(
            "PATCH",
            f"/api/v1/reports/{report_id}",
            json={"state": "filed", "hotline_report_id": "CT-2101", "filed_at": filed_at},
        )
        assert (filed["state"], filed["hotline_report_id"]) == ("filed", "CT-2101")
        assert filed["hold"] is not None, "a filed report holds its detection"

        xml = oscar.http.get(f"/api/v1/reports/{report_id}/download", params={"profile": "ncmec"})
        assert xml.status_code == 200, xml.text[:2000]
        assert "attachment" in xml.headers["content-disposition"]
        root = ElementTree.fromstring(xml.content)
        viewed = [element.text for element in root.iter("fileViewedByEsp")]
        assert viewed == ["true"]
        assert "clip/csam-7" in xml.text
        assert UPLOADER in xml.text
        assert sha256 in xml.text.lower()

        generic = oscar.http.get(
            f"/api/v1/reports/{report_id}/download", params={"profile": "generic"}
        )
        assert generic.status_code == 200, generic.text[:2000]
        package = generic.json()
        assert package["report"]["id"] == report_id
        assert package["content_ref"] == "clip/csam-7"
        assert sha256 in json.dumps(package)

        # Before any source lists it, the entry names the report and no source.
        def reported_entry() -> dict:
            body = oscar.call("GET", f"/api/v1/lists/{csam}/entries", params={"limit": 100})
            [entry] = [e for e in body["entries"] if e["value"] == sha256]
            return dict(entry)

        assert reported_entry()["report"]["id"] == report_id
        assert reported_entry()["report"]["listed"] == []

        with LocalServer(f"type,value\nsha256,{sha256}\n".encode()) as feed:
            hub.manage(
                "addsource", "--name", SOURCE, "--kind", "feed",
                "--url", f"{feed.url}/hashes.csv", "--access", "all",
            )  # fmt: skip
            fetched = hub.manage("fetchsource", SOURCE)
            assert "succeeded" in fetched.stdout, fetched.stdout

        listed = wait_for(lambda: reported_entry()["report"]["listed"], WAIT_SECONDS)
        assert listed, f"the entry never showed the listing:\n{hub.log_tail()}"
        assert [item["source"] for item in listed] == [SOURCE]

        # The same on the web pages: the list page and the dashboard's lag chart.
        assert browser.log_in(OWNER_EMAIL, password) == "/o/report-oscar/"
        page = browser.http.get(f"/o/report-oscar/lists/{csam}/")
        assert page.status_code == 200
        assert report_id in page.text
        assert f"now in {SOURCE}" in page.text
        dashboard = browser.http.get("/o/report-oscar/")
        fragments = re.findall(r'hx-get="([^"]*reports[^"]*)"', dashboard.text)
        assert fragments, "the dashboard has no report-to-listing chart"
        chart = browser.http.get(fragments[0])
        assert chart.status_code == 200
        assert SOURCE in chart.text
        assert re.search(r"\b10(\.\d)? days?\b", chart.text), chart.text[:3000]
    finally:
        browser.close()
        oscar.close()
