"""An HMA client moved to HashHub by its base URL alone, on a hub started as `make run` does.

Lima's integration was written against Meta's Hasher-Matcher-Actioner: it knows a base URL and
HMA's routes, and sends no header of its own. Pointed at ``http://KEY@host/hma`` (the HashHub API
key as the URL's user, so the HTTP client sends it as Basic credentials), it creates a bank, adds a
signal and a photo to it, and looks them up, in HMA's request and response shapes.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.e2e.helpers import RunningHub, synthetic_png

pytestmark = pytest.mark.e2e


class HmaClient:
    """What an HMA integration holds: a base URL, nothing else (no Authorization header)."""

    def __init__(self, base_url: str) -> None:
        self.base = base_url.rstrip("/")
        self.http = httpx.Client(timeout=120)

    def call(self, method: str, path: str, *, expect: int = 200, **kwargs: Any) -> Any:
        response = self.http.request(method, self.base + path, **kwargs)
        assert response.status_code == expect, (
            f"{method} {path} answered {response.status_code}, not {expect}: {response.text[:2000]}"
        )
        return response.json()

    def close(self) -> None:
        self.http.close()


def flip(value: str, bits: int) -> str:
    number = int(value, 16)
    for bit in range(bits):
        number ^= 1 << (bit * 9)
    return f"{number:064x}"


@pytest.fixture(scope="module")
def hma(hub: RunningHub) -> Iterator[HmaClient]:
    hub.manage("createorg", "--name", "Lima Forums", "--slug", "hma-lima", "--approve")
    key = hub.manage(
        "createapikey", "--org", "hma-lima", "--name", "hma", "--scopes",
        "match,lists:read,lists:write,lists:admin",
    ).stdout.strip()  # fmt: skip
    address = urlsplit(hub.url)
    client = HmaClient(f"{address.scheme}://{key}@{address.netloc}/hma")
    yield client
    client.close()


def test_an_hma_client_banks_and_looks_up_with_only_a_base_url(hma: HmaClient) -> None:
    banks = hma.call("GET", "/c/banks")
    assert {"name": "CSAM", "matching_enabled_ratio": 1.0} in banks
    created = hma.call("POST", "/c/banks", json={"name": "LIMA_REPORTS"}, expect=201)
    assert created == {"name": "LIMA_REPORTS", "matching_enabled_ratio": 1.0}

    value = f"{random.Random(20).getrandbits(256):064x}"
    added = hma.call("POST", "/c/bank/LIMA_REPORTS/signal", json={"pdq": value})
    assert added["signals"] == {"pdq": value}
    content_id = added["id"]
    assert isinstance(content_id, int) and 0 <= content_id < 2**53

    # The very next request finds it (HMA's own index catches up every 30 seconds or so).
    found = hma.call("GET", "/m/lookup", params={"signal": flip(value, 4), "signal_type": "pdq"})
    assert found == {"LIMA_REPORTS": [{"bank_content_id": content_id, "distance": "4"}]}
    raw = hma.call("GET", "/m/raw_lookup", params={"signal": value, "signal_type": "pdq"})
    assert raw == {"matches": [content_id]}

    content = hma.call("GET", f"/c/bank/LIMA_REPORTS/content/{content_id}")
    assert content == {
        "id": content_id,
        "disable_until_ts": 1,
        "original_media_uri": None,
        "bank": {"name": "LIMA_REPORTS", "matching_enabled_ratio": 1.0},
    }


def test_an_hma_client_banks_a_photo_and_finds_it_by_upload(hma: HmaClient) -> None:
    png = synthetic_png(seed=20)
    hashes = hma.call("POST", "/h/hash", files={"photo": ("a.png", png, "image/png")})
    assert len(hashes["pdq"]) == 64
    banked = hma.call(
        "POST", "/c/bank/CSAM/content", params={"types": "pdq"},
        files={"photo": ("a.png", png, "image/png")},
    )  # fmt: skip
    assert banked["signals"] == {"pdq": hashes["pdq"]}
    found = hma.call("POST", "/m/lookup", files={"photo": ("b.png", png, "image/png")})
    assert found["pdq"] == {"CSAM": [{"bank_content_id": banked["id"], "distance": "0"}]}


def test_without_the_key_in_the_url_nothing_answers(hub: RunningHub) -> None:
    response = httpx.get(f"{hub.url}/hma/c/banks", timeout=60)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    assert response.headers["WWW-Authenticate"].startswith("Basic")
