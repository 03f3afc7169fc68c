"""A platform tuning its match policy over the API, on a hub started as `make run` does.

Juliet shares an open list; Kilo subscribes to it and then, through `PUT /api/v1/policy`, tries
it in shadow mode, gives its matches recommended actions, lowers its threshold, disables one of
its own hashes until a date and finally turns the shared list off. After each step Kilo's
matches say what the policy says, and the export replays to exactly what Kilo still matches.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.helpers import Api, RunningHub

pytestmark = pytest.mark.e2e

SCOPES = "match,lists:read,lists:write,lists:admin,export"


def organisation(hub: RunningHub, name: str, slug: str) -> Api:
    hub.manage("createorg", "--name", name, "--slug", slug, "--approve")
    key = hub.manage("createapikey", "--org", slug, "--name", "e2e", "--scopes", SCOPES)
    return hub.api(key.stdout.strip())


def flip(value: str, bits: int) -> str:
    number = int(value, 16)
    for bit in range(bits):
        number ^= 1 << (bit * 7)
    return f"{number:064x}"


@pytest.fixture(scope="module")
def apis(hub: RunningHub) -> Iterator[tuple[Api, Api]]:
    juliet = organisation(hub, "Juliet Video", "policy-juliet")
    kilo = organisation(hub, "Kilo Chat", "policy-kilo")
    yield juliet, kilo
    juliet.close()
    kilo.close()


def matches(api: Api, value: str) -> list[dict[str, Any]]:
    body = api.call("POST", "/api/v1/match", json={"hashes": [{"type": "pdq", "value": value}]})
    return list(body["results"][0]["matches"])


def test_a_policy_changes_what_is_matched_and_how_and_the_export_follows(
    apis: tuple[Api, Api],
) -> None:
    juliet, kilo = apis
    rng = random.Random(19)
    shared_value, own_value = (f"{rng.getrandbits(256):064x}" for _ in range(2))
    shared = juliet.call(
        "POST", "/api/v1/lists", json={"name": "Juliet shared", "category": "csam"}, expect=201
    )["id"]
    juliet.add(shared, [("pdq", shared_value)])
    juliet.call("PATCH", f"/api/v1/lists/{shared}", json={"visibility": "open"})
    kilo.call("PUT", f"/api/v1/lists/{shared}/subscription")
    own = kilo.list_id("CSAM")
    kilo.add(own, [("pdq", own_value)])
    assert [m["list"]["tier"] for m in matches(kilo, shared_value)] == ["community"]

    # Shadow mode: recorded, not returned.
    kilo.call("PUT", "/api/v1/policy", json={"lists": [{"id": shared, "shadow": True}]})
    assert matches(kilo, shared_value) == []

    # Actions and a lower threshold.
    rules = [{"action": "block", "tier": "own", "max_distance": 4}]
    policy = kilo.call(
        "PUT",
        "/api/v1/policy",
        json={"action_rules": rules, "thresholds": {"pdq": 16}, "default_action": "review"},
    )
    assert policy["thresholds"]["pdq"] == 16
    assert [m["action"] for m in matches(kilo, own_value)] == ["block"]
    assert [m["action"] for m in matches(kilo, flip(own_value, 10))] == ["review"]
    assert matches(kilo, flip(own_value, 20)) == []
    refused = kilo.http.put("/api/v1/policy", json={"thresholds": {"pdq": 40}})
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "threshold_too_large"

    # One own hash not matched for a week; the export removes it.
    until = (dt.datetime.now(dt.UTC) + dt.timedelta(days=7)).isoformat()
    disabled = kilo.call(
        "POST",
        "/api/v1/policy/disabled-entries",
        json={"list": own, "type": "pdq", "value": own_value, "until": until, "note": "e2e"},
        expect=201,
    )
    assert matches(kilo, own_value) == []
    assert (own, "pdq", own_value) not in kilo.export_replay()

    # The shared list turned off: matches and the export drop it; on again, both have it back.
    kilo.call(
        "PUT", "/api/v1/policy", json={"lists": [{"id": shared, "enabled": False, "shadow": False}]}
    )
    assert matches(kilo, shared_value) == []
    exported = kilo.export_replay()
    assert all(list_id != shared for list_id, _, _ in exported)
    kilo.call("PUT", "/api/v1/policy", json={"lists": [{"id": shared, "enabled": True}]})
    assert [m["list"]["tier"] for m in matches(kilo, shared_value)] == ["community"]
    assert (shared, "pdq", shared_value) in kilo.export_replay()

    # The disable ended by hand: matched and exported again.
    gone = kilo.http.delete(f"/api/v1/policy/disabled-entries/{disabled['id']}")
    assert gone.status_code == 200
    assert [m["list"]["id"] for m in matches(kilo, own_value)] == [own]
    assert (own, "pdq", own_value) in kilo.export_replay()
