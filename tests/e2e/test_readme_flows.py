"""The README's flows, taken as their users take them, on a hub started as `make run` starts it.

Only the hub's HTTP API, its web pages and the management commands the README documents are
used; nothing reads the database. The flows run in the order written here, on organisations made
once for the module: they add hashes, share and subscribe, and fetch an upstream source; then
every organisation's export is compared with what it matches, every page a demo login reaches
by links is opened, and the reconciler must find no drift in what all of that did.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.e2e.helpers import Api, Browser, Hash, Held, RunningHub, random_hash, synthetic_png
from tests.lists.ncmec_fixtures import (
    PASSWORD,
    USERNAME,
    EntryLog,
    NcmecServer,
    UpstreamEntry,
    deleted,
    image,
    iso,
)

pytestmark = pytest.mark.e2e

SCOPES = "match,lists:read,lists:write,lists:admin,export"
# (name, slug, approved): two approved organisations that share with each other, one waiting.
ORGS = [
    ("Delta Safety", "delta", True),
    ("Echo Video", "echo", True),
    ("Foxtrot Forum", "foxtrot", False),
]
OWNER_EMAIL = "owner@delta.example"
DEMO_PASSWORD = "hashhub-demo-2026"
DEMO_LOGINS = [  # the README's table
    "alice@example.org",  # owner of Acme Trust & Safety
    "bob@example.org",  # viewer in Acme Trust & Safety
    "charlie@example.net",  # owner of Borealis Platform
    "dana@example.com",  # owner of Cinder Social (awaiting approval)
    "staff@example.org",  # hub staff
]
CRAWL_LIMIT = 300
SOURCE = "E2E NCMEC"
NCMEC_TYPES = {"md5": "md5", "sha1": "sha1", "pdq": "pdq", "pdna": "photodna"}


@dataclass
class Org:
    name: str
    slug: str
    approved: bool
    api: Api


@pytest.fixture(scope="module")
def owner_password() -> str:
    return secrets.token_urlsafe(18)


@pytest.fixture(scope="module")
def orgs(hub: RunningHub, owner_password: str) -> Iterator[dict[str, Org]]:
    """The organisations an administrator makes with createorg, each with an API key."""
    made: dict[str, Org] = {}
    for name, slug, approved in ORGS:
        approve = ["--approve"] if approved else []
        created = hub.manage("createorg", "--name", name, "--slug", slug, *approve)
        state = "approved" if approved else "awaiting approval"
        assert f"Created organisation {name} ({slug}), {state}." in created.stdout
        key = hub.manage("createapikey", "--org", slug, "--name", "e2e", "--scopes", SCOPES)
        made[slug] = Org(name, slug, approved, hub.api(key.stdout.strip()))
    # A person for the web pages: Delta's owner, whose password the command reads from a variable.
    hub.manage(
        "createmember", "--org", "delta", "--email", OWNER_EMAIL, "--role", "owner",
        "--password-env", "E2E_OWNER_PASSWORD", env={"E2E_OWNER_PASSWORD": owner_password},
    )  # fmt: skip
    yield made
    for org in made.values():
        org.api.close()


@pytest.fixture(scope="module")
def acme(hub: RunningHub) -> Iterator[Api]:
    """Acme, the demo organisation, through the key seeddemo printed once."""
    api = hub.api(hub.demo_key())
    yield api
    api.close()


@pytest.fixture(scope="module")
def known() -> set[Hash]:
    """Every hash the flows put anywhere (kept or later removed), for the export comparison."""
    return set()


def tiers(matches: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """(list id, tier) of each match."""
    return {(match["list"]["id"], match["list"]["tier"]) for match in matches}


# --- 1. organisations and keys ----------------------------------------------------------------


def test_organisations_made_with_createorg_get_working_api_keys(
    orgs: dict[str, Org], acme: Api
) -> None:
    for org in orgs.values():
        me = org.api.call("GET", "/api/v1/me")
        assert me["organization"] == {"name": org.name, "slug": org.slug, "approved": org.approved}
        assert sorted(me["key"]["scopes"]) == sorted(SCOPES.split(","))
        own = {(item["name"], item["category"]) for item in org.api.lists(tier="own")}
        assert own == {("CSAM", "csam"), ("SE", "se")}  # every organisation gets both at once
    assert acme.call("GET", "/api/v1/me")["organization"]["slug"] == "acme"


def test_an_unapproved_organisations_key_matches_only_its_own_lists(
    orgs: dict[str, Org], acme: Api, known: set[Hash]
) -> None:
    foxtrot = orgs["foxtrot"].api
    own = random_hash("sha256")
    foxtrot.add(foxtrot.list_id("CSAM"), [own])
    known.add(own)
    # What approved organisations match beyond their own: the demo feed (verified, open to all)
    # and the demo's anonymous community list, to which Acme subscribes.
    verified = acme.entries(acme.list_id("Demo hotline feed CSAM", tier="verified"), limit=5)
    community_id = acme.list_id("Community CSAM", tier="community")
    shared = acme.entries(community_id, limit=5)
    found = acme.match([*verified, *shared])
    assert all({m["list"]["tier"] for m in found[h]} == {"verified"} for h in verified), found
    assert all({m["list"]["tier"] for m in found[h]} == {"community"} for h in shared), found

    found = foxtrot.match([own, *verified, *shared])
    assert tiers(found[own]) == {(foxtrot.list_id("CSAM"), "own")}
    assert all(found[h] == [] for h in [*verified, *shared])
    assert {item["tier"] for item in foxtrot.lists()} == {"own"}
    refused = foxtrot.call("PUT", f"/api/v1/lists/{community_id}/subscription", expect=403)
    assert refused["error"]["code"] == "org_not_approved"


# --- 2. adding hashes -------------------------------------------------------------------------


def test_hashes_added_one_by_one_match_at_once(orgs: dict[str, Org], known: set[Hash]) -> None:
    delta = orgs["delta"].api
    csam = delta.list_id("CSAM")
    for signal_type in ("md5", "sha1", "sha256", "pdq", "phash", "photodna"):
        added = random_hash(signal_type)
        assert delta.add(csam, [added])["added"] == 1
        known.add(added)
        [match] = delta.match([added])[added]
        assert (match["list"]["id"], match["list"]["tier"], match["distance"]) == (csam, "own", 0)


def test_a_hash_file_loaded_with_importhashes_matches_at_once(
    hub: RunningHub, orgs: dict[str, Org], known: set[Hash], tmp_path: Path
) -> None:
    hashes = [random_hash(kind) for kind in ("pdq", "md5", "sha1") for _ in range(10)]
    lines = ["type,value,labels,note", *(f"{kind},{value},A1,e2e" for kind, value in hashes)]
    lines.insert(5, "pdq,not-a-hash")  # line 6 of the file
    path = tmp_path / "hashes.csv"
    path.write_text("\n".join(lines) + "\n")

    loaded = hub.manage("importhashes", "--org", "delta", "--list", "SE", str(path))
    assert "30 added, 0 already present, 1 rejected." in loaded.stdout
    assert "line 6: " in loaded.stderr
    known.update(hashes)
    delta = orgs["delta"].api
    se = delta.list_id("SE")
    found = delta.match(hashes)
    assert all(tiers(found[h]) == {(se, "own")} for h in hashes), found


def test_a_hash_file_uploaded_on_the_web_page_matches_once_imported(
    hub: RunningHub, orgs: dict[str, Org], known: set[Hash], owner_password: str
) -> None:
    delta = orgs["delta"].api
    csam = delta.list_id("CSAM")
    hashes = [random_hash(kind) for kind in ("sha256", "phash") for _ in range(5)]
    upload = "".join(f"{kind},{value}\n" for kind, value in hashes).encode()
    browser = Browser(hub.url)
    try:
        assert browser.log_in(OWNER_EMAIL, owner_password) == "/o/delta/"
        sent = browser.post_form(
            f"/o/delta/lists/{csam}/upload/",
            {"default_type": ""},
            files={"file": ("hashes.csv", upload, "text/csv")},
        )
        assert sent.status_code == 302, sent.text[:2000]
        job = sent.headers["location"]  # the import's page, with its live progress
        status = _wait_for_import(browser, job)
    finally:
        browser.close()
    assert status == "done"
    known.update(hashes)
    found = delta.match(hashes)
    assert all(tiers(found[h]) == {(csam, "own")} for h in hashes), found


def _wait_for_import(browser: Browser, job_page: str) -> str:
    """Poll the import's progress fragment (as its page does) until the Celery job has run."""
    status = ""
    deadline = time.monotonic() + 120  # generous; polled, never asserted on
    while time.monotonic() < deadline:
        response = browser.http.get(f"{job_page}progress/")
        assert response.status_code == 200, response.text[:2000]
        found = re.search(r"badge status-(\w+)", response.text)
        status = found.group(1) if found else ""
        if status in ("done", "failed"):
            break
        time.sleep(0.25)
    return status


def test_hashes_of_an_image_can_be_added_and_then_match_it(
    orgs: dict[str, Org], known: set[Hash]
) -> None:
    delta = orgs["delta"].api
    csam = delta.list_id("CSAM")
    png = synthetic_png(seed=2026)

    def match_image() -> dict[str, Any]:
        files = {"image": ("upload.png", png, "image/png")}
        return dict(delta.call("POST", "/api/v1/match/image", files=files))

    first = match_image()
    computed = {kind: body["value"] for kind, body in first["hashes"].items()}
    assert set(computed) == {"md5", "sha1", "sha256", "pdq", "phash"}
    assert first["hashes"]["pdq"]["quality"] >= 50
    assert all(result["matches"] == [] for result in first["results"])

    delta.add(csam, computed.items())
    known.update(computed.items())
    again = match_image()
    for result in again["results"]:
        assert [(m["list"]["id"], m["distance"]) for m in result["matches"]] == [(csam, 0)]
    found = delta.match(computed.items())
    assert all(tiers(found[h]) == {(csam, "own")} for h in computed.items())


# --- 3. sharing and subscribing ---------------------------------------------------------------


def test_sharing_and_subscribing_take_effect_and_an_anonymous_list_names_no_owner(
    hub: RunningHub, orgs: dict[str, Org], known: set[Hash]
) -> None:
    owner, delta, echo = orgs["delta"], orgs["delta"].api, orgs["echo"].api
    new_list = {"name": "Shared CSAM hashes", "category": "csam"}
    shared = delta.call("POST", "/api/v1/lists", json=new_list, expect=201)["id"]
    hashes = [random_hash("pdq"), random_hash("md5")]
    delta.add(shared, hashes)
    known.update(hashes)
    assert all(found == [] for found in echo.match(hashes).values())  # private

    delta.call("PATCH", f"/api/v1/lists/{shared}", json={"visibility": "open"})
    assert all(found == [] for found in echo.match(hashes).values())  # not subscribed yet
    echo.call("PUT", f"/api/v1/lists/{shared}/subscription")
    for matches in echo.match(hashes).values():
        [match] = matches
        assert match["list"]["tier"] == "community"
        assert (match["list"]["contributor"], match["list"]["anonymous"]) == (owner.name, False)

    # Seen open, it can never become anonymous: the echo would still know whose it is.
    refused = delta.http.patch(f"/api/v1/lists/{shared}", json={"visibility": "anonymous"})
    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "was_open")
    echo.call("DELETE", f"/api/v1/lists/{shared}/subscription")
    assert all(found == [] for found in echo.match(hashes).values())
    assert all(tiers(found) == {(shared, "own")} for found in delta.match(hashes).values())

    # A list never open may be anonymous: others see it from the next publication (beat runs
    # it on a fixed clock; an operator may run it at once), then match it without anything
    # that names the owner. The owner's own matching never waits.
    quiet = delta.call("POST", "/api/v1/lists", json={**new_list, "name": "Quiet"}, expect=201)
    quiet_hashes = [random_hash("pdq"), random_hash("md5")]
    delta.add(quiet["id"], quiet_hashes)
    known.update(quiet_hashes)
    delta.call("PATCH", f"/api/v1/lists/{quiet['id']}", json={"visibility": "anonymous"})
    assert echo.http.put(f"/api/v1/lists/{quiet['id']}/subscription").status_code == 404
    published = hub.manage("publishanonymous")
    assert "Published 2 entry change(s)" in published.stdout
    echo.call("PUT", f"/api/v1/lists/{quiet['id']}/subscription")
    late = random_hash("md5")
    delta.add(quiet["id"], [late])
    known.add(late)
    assert tiers(delta.match([late])[late]) == {(quiet["id"], "own")}
    assert echo.match([late])[late] == []  # not published yet
    answer = echo.http.post(
        "/api/v1/match", json={"hashes": [{"type": t, "value": v} for t, v in quiet_hashes]}
    )
    assert answer.status_code == 200
    for result in answer.json()["results"]:
        [match] = result["matches"]
        assert match["list"]["id"] == quiet["id"]
        assert (match["list"]["contributor"], match["list"]["anonymous"]) == (None, True)
    listed = echo.http.get(f"/api/v1/lists/{quiet['id']}")
    assert listed.status_code == 200
    for text in (answer.text, listed.text):
        assert owner.name not in text
        assert f'"{owner.slug}"' not in text
    hub.manage("publishanonymous")
    [match] = echo.match([late])[late]
    assert match["list"]["id"] == quiet["id"]


# --- 4. an upstream verified source -----------------------------------------------------------


def fingerprints(entry: UpstreamEntry) -> set[Hash]:
    """An NCMEC entry's hashes in the hub's canonical form (PhotoDNA arrives as base64)."""
    found = set()
    for name, value in entry.fingerprints:
        signal_type = NCMEC_TYPES[name]
        if signal_type == "photodna":
            value = base64.b64decode(value).hex()
        found.add((signal_type, value))
    return found


def read_until(server: NcmecServer) -> int:
    """Where the fetches so far stopped reading: the end of the last window asked for."""
    ends = [
        datetime.fromisoformat(parse_qs(urlsplit(path).query)["to"][0]).timestamp()
        for path in server.entries_requests()
    ]
    return int(max(ends))


def test_an_ncmec_source_carries_upstream_updates_and_deletions_to_approved_organisations(
    hub: RunningHub, orgs: dict[str, Org], known: set[Hash]
) -> None:
    delta, foxtrot = orgs["delta"].api, orgs["foxtrot"].api
    # The fake NCMEC server is plain http on 127.0.0.1: the operator allows it, as README says.
    local = {"HASHHUB_SOURCE_ALLOWED_HOSTS": "127.0.0.1"}
    credentials = {
        "HASHHUB_SOURCE_E2E_NCMEC_USERNAME": USERNAME,
        "HASHHUB_SOURCE_E2E_NCMEC_PASSWORD": PASSWORD,
        **local,
    }
    # Timestamps relative to now: the source reads windows from `start` up to the present.
    now = int(time.time())
    changed = image(1, "e2e-1", now - 3 * 3600)
    kept = image(1, "e2e-2", now - 2 * 3600)
    removed = image(2, "e2e-3", now - 3600)
    upstream = EntryLog([changed, kept, removed])
    with NcmecServer(log=upstream) as server:
        config = {"start": iso(now - 86400), "settle_minutes": 0}
        hub.manage(
            "addsource", "--name", SOURCE, "--kind", "ncmec", "--url", server.url,
            "--username-env", "HASHHUB_SOURCE_E2E_NCMEC_USERNAME",
            "--password-env", "HASHHUB_SOURCE_E2E_NCMEC_PASSWORD",
            "--access", "all", "--config-json", json.dumps(config), env=local,
        )  # fmt: skip
        first = hub.manage("fetchsource", SOURCE, env=credentials)
        assert "succeeded" in first.stdout and "3 records, 12 added" in first.stdout, first.stdout
        verified = delta.list_id(f"{SOURCE} CSAM", tier="verified")
        before = delta.match(fingerprints(changed) | fingerprints(removed))
        assert all(tiers(found) == {(verified, "verified")} for found in before.values())

        # Upstream updates one record (new fingerprints, same id) and deletes another, stamped
        # where the first fetch stopped reading, so that the next fetch's window holds them.
        stamp = read_until(server)
        update = image(1, "e2e-1", stamp, classification="A2")
        upstream.add(update, deleted(2, "e2e-3", stamp))
        while time.time() < stamp + 1:  # Windows end on a whole second, and this one after it.
            time.sleep(0.05)
        second = hub.manage("fetchsource", SOURCE, env=credentials)
        # The update replaced the record's four hashes; the deletion took the other's four.
        assert "2 records, 4 added, 1 updated, 8 removed" in second.stdout, second.stdout

    remaining = fingerprints(kept) | fingerprints(update)
    gone = fingerprints(removed) | fingerprints(changed)
    known.update(remaining | gone)
    found = delta.match(remaining | gone)
    for hash_ in remaining:
        [match] = found[hash_]
        assert (match["list"]["id"], match["list"]["tier"]) == (verified, "verified")
        assert match["list"]["contributor"] == SOURCE
    assert all(found[hash_] == [] for hash_ in gone)
    assert all(found == [] for found in foxtrot.match(remaining).values())  # not approved


# --- 5. the export equals what matches --------------------------------------------------------


def test_replaying_each_organisations_export_equals_what_it_matches(
    orgs: dict[str, Org], acme: Api, known: set[Hash]
) -> None:
    apis = {slug: org.api for slug, org in orgs.items()} | {"acme": acme}
    exported = {slug: api.export_replay() for slug, api in apis.items()}
    every_hash = known | {(kind, value) for held in exported.values() for _, kind, value in held}
    differences = []
    for slug, api in apis.items():
        matched = api.exact_matches(every_hash)
        if matched != exported[slug]:
            differences.append(_difference(slug, api, exported[slug], matched))
    assert not differences, "\n".join(differences)


def _difference(slug: str, api: Api, exported: set[Held], matched: set[Held]) -> str:
    names = {item["id"]: f"{item['name']} ({item['tier']})" for item in api.lists()}

    def sample(held: set[Held]) -> str:
        counts: dict[str, int] = {}
        for list_id, _, _ in held:
            name = names.get(list_id, list_id)
            counts[name] = counts.get(name, 0) + 1
        return ", ".join(f"{count} in {name}" for name, count in sorted(counts.items()))

    return (
        f"{slug}: the export replays {len(exported)} hashes, the match API finds {len(matched)}; "
        f"only exported: [{sample(exported - matched)}]; "
        f"only matched: [{sample(matched - exported)}]"
    )


# --- 6. every page a demo login can reach -----------------------------------------------------


@pytest.mark.parametrize("email", DEMO_LOGINS)
def test_no_page_a_demo_login_reaches_by_links_is_a_server_error(
    hub: RunningHub, email: str
) -> None:
    browser = Browser(hub.url)
    try:
        landed = browser.log_in(email, DEMO_PASSWORD)
        if landed.startswith("/accounts/2fa/"):
            pytest.skip(f"{email} has two-factor authentication on; the crawl cannot log in")
        crawl = browser.crawl("/", limit=CRAWL_LIMIT)
        still_logged_in = browser.logged_in()
    finally:
        browser.close()
    assert not crawl.failures, f"as {email}, of {len(crawl.visited)} pages:\n" + "\n".join(
        crawl.failures
    )
    assert still_logged_in, f"the crawl as {email} logged itself out"
    assert len(crawl.visited) > 10, crawl.visited  # it got past the first page


# --- 7. the reconciler ------------------------------------------------------------------------


def test_reconcile_finds_no_drift_after_all_of_it(hub: RunningHub) -> None:
    result = hub.manage("reconcile", "--dry-run", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "drift: 0" in result.stdout.splitlines(), result.stdout
