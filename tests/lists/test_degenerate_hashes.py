"""Issue 19, a brake on degenerate hashes: no add path takes a PDQ of a blank image.

Matching is left alone (a degenerate submitted hash is still looked up); only adding is refused.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator

import numpy as np
import pytest
from django.test import Client
from django_scopes import scopes_disabled
from PIL import Image

from hub.audit import Actor
from hub.models import Organization
from lists.hashtypes import get_signal_type
from lists.hashtypes.base import DecodedImage
from lists.hashtypes.pdq import (
    DEGENERATE_PDQ,
    PDQ_MAX_BITS_SET,
    PDQ_MIN_BITS_SET,
    pdq_degenerate_reason,
)
from lists.importing import import_lines
from lists.models import HashList, ImportRunError
from lists.services import EntryInput, entry_add, entry_remove
from lists.sources.adapters.http import Http
from tests.lists.feed_fixtures import Upstream, quick_http, random_pdq, serve_upstream
from tests.lists.test_feed_runs import csv_body, feed_source, live, publish, run
from tests.lists.test_views import live_values, own_list, png, text, upload, url

pytestmark = pytest.mark.django_db
ACTOR = Actor(system="degenerate test")
# 64x64 flat images of the colours DEGENERATE_PDQ names.
COLOURS = {
    "black": (0, 0, 0),
    "white": (255, 255, 255),
    "grey": (128, 128, 128),
    "red": (255, 0, 0),
    "green": (0, 255, 0),
    "blue": (0, 0, 255),
}


def flat_pdq(colour: tuple[int, int, int], size: tuple[int, int] = (64, 64)) -> bytes:
    computed = get_signal_type("pdq").compute(
        DecodedImage(data=b"", image=Image.new("RGB", size, colour))
    )
    assert computed is not None
    return computed.value


def with_bits_set(count: int) -> bytes:
    """A PDQ value with ``count`` of its 256 bits set, scattered."""
    bits = np.zeros(256, dtype=np.uint8)
    bits[np.random.default_rng(count).permutation(256)[:count]] = 1
    return np.packbits(bits).tobytes()


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    yield from serve_upstream()


@pytest.fixture
def http() -> Iterator[Http]:
    yield from quick_http()


# --- the rule ---------------------------------------------------------------------------------


def test_the_known_degenerate_values_are_the_pdq_of_flat_pillow_images() -> None:
    assert set(DEGENERATE_PDQ) == set(COLOURS)
    for name, colour in COLOURS.items():
        assert flat_pdq(colour) == DEGENERATE_PDQ[name], name


@pytest.mark.parametrize("colour", list(COLOURS.values()))
def test_a_flat_colour_images_pdq_is_refused(colour: tuple[int, int, int]) -> None:
    reason = pdq_degenerate_reason(flat_pdq(colour))
    assert reason is not None and "would match" in reason


def test_a_value_near_a_flat_images_pdq_is_refused() -> None:
    near = bytearray(DEGENERATE_PDQ["grey"])
    near[5] ^= 0xFF  # 8 bits away
    assert "8 bits from the hash of a flat grey image" in (pdq_degenerate_reason(bytes(near)) or "")


@pytest.mark.parametrize(
    ("bits_set", "refused"),
    [
        (0, True),
        (PDQ_MIN_BITS_SET - 1, True),
        (PDQ_MIN_BITS_SET, False),
        (128, False),
        (PDQ_MAX_BITS_SET, False),
        (PDQ_MAX_BITS_SET + 1, True),
        (256, True),
    ],
)
def test_the_bit_balance_band_edges(bits_set: int, refused: bool) -> None:
    reason = pdq_degenerate_reason(with_bits_set(bits_set))
    assert (reason is not None) is refused
    if refused:
        assert f"has {bits_set} of 256 bits set; real pictures give about 128" in (reason or "")


def test_random_values_and_real_looking_pictures_pass() -> None:
    assert all(pdq_degenerate_reason(secrets.token_bytes(32)) is None for _ in range(500))
    rng = np.random.default_rng(19)
    for _ in range(20):
        pixels = rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)
        computed = get_signal_type("pdq").compute(
            DecodedImage(data=b"", image=Image.fromarray(pixels, "RGB"))
        )
        assert computed is not None
        assert pdq_degenerate_reason(computed.value, quality=computed.quality) is None


def test_a_computed_hash_below_quality_50_is_refused_whatever_its_value() -> None:
    value = secrets.token_bytes(32)
    assert "quality 49, below 50" in (pdq_degenerate_reason(value, quality=49) or "")
    assert pdq_degenerate_reason(value, quality=50) is None


# --- the add paths ------------------------------------------------------------------------------


def test_the_api_refuses_all_zero_and_all_one_pdq_per_item_and_adds_the_rest(
    api_a: Client, org_a: Organization
) -> None:
    csam = own_list(org_a)
    good = secrets.token_hex(32)
    items = [
        {"type": "pdq", "value": "0" * 64},
        {"type": "pdq", "value": good},
        {"type": "pdq", "value": "F" * 64},
    ]
    response = api_a.post(
        f"/api/v1/lists/{csam.public_id}/entries",
        {"entries": items},
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["added"] == 1
    assert [(e["index"], e["code"]) for e in body["errors"]] == [
        (0, "degenerate_hash"),
        (2, "degenerate_hash"),
    ]
    assert "0 of 256 bits set" in body["errors"][0]["message"]
    assert "256 of 256 bits set" in body["errors"][1]["message"]
    assert live_values(csam) == {good}


def test_removing_a_degenerate_value_is_not_refused(csam_a: HashList) -> None:
    removed = entry_remove(
        hash_list=csam_a, items=[EntryInput("pdq", "0" * 64)], reason="blank", actor=ACTOR
    )
    assert removed.errors == [] and removed.not_present == 1


def test_the_web_form_refuses_a_flat_images_pdq(alice_client: Client, org_a: Organization) -> None:
    csam = own_list(org_a)
    response = alice_client.post(url(csam), {"type": "pdq", "value": DEGENERATE_PDQ["grey"].hex()})
    assert response.status_code == 400
    assert "flat grey image" in text(response)
    assert live_values(csam) == set()


def test_adding_by_image_refuses_a_low_quality_pdq_with_a_clear_message(
    alice_client: Client, org_a: Organization
) -> None:
    csam = own_list(org_a)
    # A flat colour not in DEGENERATE_PDQ: only its quality (0) gives it away.
    data = png(Image.new("RGB", (64, 64), (120, 130, 140)))
    page = alice_client.post(url(csam, "image/"), {"image": upload("f.png", data)})
    computed = re.findall(r'name="computed" value="([^"]+)"', text(page))
    pdq = next(c for c in computed if c.startswith("pdq:"))
    pair, quality = pdq.rsplit(":", 1)
    assert int(quality) < 50
    refused = alice_client.post(url(csam, "image/add/"), {"hash": [pair], "computed": computed})
    assert refused.status_code == 400
    assert f"This PDQ hash has quality {quality}, below 50" in text(refused)
    assert live_values(csam) == set()


def test_a_csv_import_rejects_the_degenerate_line_and_imports_the_rest(
    csam_a: HashList,
) -> None:
    good = [secrets.token_hex(32), secrets.token_hex(32)]
    lines = ["type,value", f"pdq,{good[0]}", "pdq," + "0" * 64, f"pdq,{good[1]}"]
    summary = import_lines(hash_list=csam_a, lines=lines, default_type="", actor=ACTOR, label="t")
    assert (summary.added, summary.rejected) == (2, 1)
    assert [(r["line"], r["code"]) for r in summary.rejections] == [(3, "degenerate_hash")]
    assert live_values(csam_a) == set(good)


def test_a_feed_run_rejects_the_degenerate_record_and_lands_the_rest(
    upstream: Upstream, http: Http
) -> None:
    good = random_pdq()
    blank = DEGENERATE_PDQ["white"].hex()
    source = feed_source(upstream)
    publish(upstream, source, csv_body([("pdq", blank, "", "csam"), ("pdq", good, "", "csam")]))
    done = run(source, http)
    assert (done.status, done.rejected) == ("succeeded", 1)
    with scopes_disabled():
        stored = list(ImportRunError.objects.filter(run=done).values_list("position", "code"))
    assert stored == [("line 2", "degenerate_hash")]
    assert live(source)["csam"] == {("pdq", good)}


def test_matching_still_looks_a_degenerate_hash_up(api_a: Client) -> None:
    response = api_a.post(
        "/api/v1/match",
        {"hashes": [{"type": "pdq", "value": "0" * 64}]},
        content_type="application/json",
    )
    assert response.status_code == 200
    assert response.json()["results"][0]["error"] is None


def test_entry_add_reports_the_code_for_a_hash_computed_with_low_quality(
    csam_a: HashList,
) -> None:
    item = EntryInput("pdq", secrets.token_hex(32), quality=10)
    result = entry_add(hash_list=csam_a, items=[item], actor=ACTOR)
    assert result.added == 0 and [e.code for e in result.errors] == ["degenerate_hash"]
