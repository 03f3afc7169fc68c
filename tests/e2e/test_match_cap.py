"""A platform matching next to clusters of near-duplicates, on a hub started as `make run` does.

Two organisations made with the documented commands: Hotel holds 150 near-duplicates of one
picture's PDQ hash in its own list; India, an organisation Hotel knows nothing of, holds 200
more of the same picture privately. Hotel asks with the picture's hash and gets its nearest
matches up to `max_matches`, with the count of all of them, and nothing of India's.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from tests.e2e.helpers import Api, RunningHub

pytestmark = pytest.mark.e2e

SCOPES = "match,lists:read,lists:write"


def near_duplicates(centre: int, count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    found: set[str] = set()
    while len(found) < count:
        value = centre
        for bit in rng.sample(range(256), rng.randint(1, 8)):
            value ^= 1 << bit
        found.add(f"{value:064x}")
    return sorted(found)


def distance(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


def organisation(hub: RunningHub, name: str, slug: str) -> Api:
    hub.manage("createorg", "--name", name, "--slug", slug, "--approve")
    key = hub.manage("createapikey", "--org", slug, "--name", "e2e", "--scopes", SCOPES)
    return hub.api(key.stdout.strip())


@pytest.fixture(scope="module")
def apis(hub: RunningHub) -> Iterator[tuple[Api, Api]]:
    hotel = organisation(hub, "Hotel Photos", "hotel")
    india = organisation(hub, "India Images", "india")
    yield hotel, india
    hotel.close()
    india.close()


def test_a_cluster_answers_the_nearest_matches_and_the_count_of_the_callers_own(
    apis: tuple[Api, Api],
) -> None:
    hotel, india = apis
    centre = random.Random(18).getrandbits(256)
    query = f"{centre:064x}"
    hotels = near_duplicates(centre, 150, seed=1)
    indias = [value for value in near_duplicates(centre, 260, seed=2) if value not in hotels][:200]
    hotel.add(hotel.list_id("CSAM"), [("pdq", value) for value in hotels])
    india.add(india.list_id("CSAM"), [("pdq", value) for value in indias])

    body = hotel.call(
        "POST",
        "/api/v1/match",
        json={"hashes": [{"type": "pdq", "value": query}], "max_matches": 5},
    )

    [result] = body["results"]
    assert result["match_count"] == 150
    assert result["truncated"] is True
    returned = [match["matched_value"] for match in result["matches"]]
    assert len(returned) == 5
    assert set(returned) <= set(hotels)
    nearest = sorted(distance(query, value) for value in hotels)[:5]
    assert [match["distance"] for match in result["matches"]] == nearest
    assert {match["list"]["tier"] for match in result["matches"]} == {"own"}

    # India's own answer is India's alone, and the hub's cap holds for it too.
    [theirs] = india.call(
        "POST", "/api/v1/match", json={"hashes": [{"type": "pdq", "value": query}]}
    )["results"]
    assert theirs["match_count"] == 200
    assert len(theirs["matches"]) == 20


def test_asking_for_more_than_the_hubs_cap_is_a_clear_400(apis: tuple[Api, Api]) -> None:
    hotel, _ = apis
    body = hotel.call(
        "POST",
        "/api/v1/match",
        expect=400,
        json={"hashes": [{"type": "pdq", "value": "0" * 64}], "max_matches": 500},
    )

    assert body["error"]["code"] == "max_matches_too_large"
    assert body["error"]["details"]["max"] == 20
