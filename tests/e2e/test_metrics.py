"""Prometheus scraping /metrics on a hub started as `make run` does (issue 20).

The operator set HASHHUB_METRICS_TOKEN (the session's second hub, ``local_hub``). A scrape
with the token answers the Prometheus text format, summed over every web worker; the request
counter of the match endpoint moves after a match; without the token, or with a wrong one, the
endpoint is a 404 like any unknown page. No organisation's name or hash is in the scrape.
"""

from __future__ import annotations

import re
import secrets

import httpx
import pytest

from tests.e2e.helpers import METRICS_TOKEN, LocalHub

pytestmark = pytest.mark.e2e

SCOPES = "match,lists:read,lists:write"


def scrape(hub: LocalHub, token: str | None = METRICS_TOKEN) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.get(f"{hub.url}/metrics", headers=headers, timeout=60)


def match_requests(text: str) -> float:
    """The match endpoint's request count, over every status and worker."""
    found = re.findall(
        r'^hashhub_http_request_duration_seconds_count\{[^}]*endpoint="api_match"[^}]*\} (\S+)$',
        text,
        flags=re.MULTILINE,
    )
    return sum(float(value) for value in found)


def test_a_scrape_counts_requests_and_tells_nothing_of_organisations(local_hub: LocalHub) -> None:
    hub = local_hub
    hub.manage("createorg", "--name", "Mike Metrics Media", "--slug", "mike", "--approve")
    key = hub.manage("createapikey", "--org", "mike", "--name", "e2e", "--scopes", SCOPES)
    api = hub.api(key.stdout.strip())
    md5 = secrets.token_hex(16)
    try:
        api.add(api.list_id("CSAM"), [("md5", md5)])
        before = scrape(hub)
        assert before.status_code == 200, before.text[:500]
        assert before.headers["content-type"].startswith("text/plain")
        for _ in range(3):
            api.call("POST", "/api/v1/match", json={"hashes": [{"type": "md5", "value": md5}]})
        after = scrape(hub)
        assert match_requests(after.text) >= match_requests(before.text) + 3
        assert "# TYPE hashhub_http_request_duration_seconds histogram" in after.text
        assert "Mike Metrics Media" not in after.text and md5 not in after.text
        assert scrape(hub, token=None).status_code == 404
        assert scrape(hub, token="not-the-token").status_code == 404
    finally:
        api.close()
