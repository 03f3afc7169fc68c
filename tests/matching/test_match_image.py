"""POST /api/v1/match/image: one in-memory decode, every computed type matched."""

from __future__ import annotations

import io
import json
import secrets
from typing import Any

import numpy as np
import pdqhash
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django_scopes import scope
from PIL import Image

from lists.hashtypes import compute_all, decode_image
from lists.hashtypes.pdq import pdq_vector_to_bytes
from matching.models import Detection
from tests.lists.test_hashtypes_compute import encode, synthetic_image
from tests.matching.test_match_api import add, own_list

pytestmark = pytest.mark.django_db


def hashes_of(data: bytes) -> dict[str, Any]:
    return compute_all(decode_image(data, max_bytes=1 << 26, max_pixels=1 << 26))


def upload(client: Client, data: bytes, **fields: Any) -> Any:
    return client.post(
        "/api/v1/match/image",
        {"image": SimpleUploadedFile("upload.bin", data), **fields},
    )


def test_it_returns_every_computed_hash_with_pdq_quality(api_a: Client) -> None:
    png = encode(synthetic_image(seed=3))
    body = upload(api_a, png).json()
    assert set(body["hashes"]) == {"md5", "sha1", "sha256", "pdq", "phash"}
    assert body["hashes"]["pdq"]["quality"] >= 50
    assert len(body["hashes"]["pdq"]["value"]) == 64
    assert [r["type"] for r in body["results"]] == list(body["hashes"])
    assert all(r["matches"] == [] and r["error"] is None for r in body["results"])
    assert body["detection"] is None


def test_a_resized_recompressed_copy_matches_by_pdq_but_not_by_md5(
    api_a: Client, org_a: Any
) -> None:
    original = synthetic_image(seed=11, size=(400, 300))
    stored = hashes_of(encode(original))
    add(own_list(org_a), ("pdq", stored["pdq"].text), ("md5", stored["md5"].text))

    copy = original.resize((300, 225), Image.Resampling.BILINEAR)
    jpeg = encode(copy, "JPEG", quality=70)
    body = upload(api_a, jpeg, content_ref="post-9").json()
    results = {r["type"]: r for r in body["results"]}
    assert results["md5"]["matches"] == []
    [hit] = results["pdq"]["matches"]
    assert 0 < hit["distance"] <= 31
    assert hit["matched_value"] == stored["pdq"].text
    with scope(organization=org_a.pk):
        detection = Detection.objects.get()
    assert detection.public_id == body["detection"]
    assert detection.content_ref == "post-9"


def test_the_same_bytes_match_by_md5_too(api_a: Client, org_a: Any) -> None:
    png = encode(synthetic_image(seed=5))
    stored = hashes_of(png)
    add(own_list(org_a), ("md5", stored["md5"].text))
    results = {r["type"]: r for r in upload(api_a, png).json()["results"]}
    assert results["md5"]["matches"][0]["distance"] == 0


def test_a_low_quality_pdq_is_reported_and_not_matched(api_a: Client, org_a: Any) -> None:
    flat = encode(Image.new("RGB", (128, 128), (90, 90, 90)))
    pdq = hashes_of(flat)["pdq"]
    add(own_list(org_a), ("pdq", pdq.text))
    body = upload(api_a, flat).json()
    assert body["hashes"]["pdq"]["quality"] < 50
    results = {r["type"]: r for r in body["results"]}
    assert results["pdq"]["error"]["code"] == "low_quality"
    assert results["pdq"]["matches"] == []


def test_max_distance_is_a_json_string_and_is_checked(api_a: Client) -> None:
    png = encode(synthetic_image(seed=2))
    assert upload(api_a, png, max_distance=json.dumps({"pdq": 5})).status_code == 200
    too_far = upload(api_a, png, max_distance=json.dumps({"pdq": 40}))
    assert too_far.status_code == 400
    assert too_far.json()["error"]["code"] == "max_distance_too_large"
    broken = upload(api_a, png, max_distance="{pdq")
    assert broken.status_code == 400
    assert broken.json()["error"]["code"] == "invalid_max_distance"


@pytest.mark.parametrize(
    ("data", "code", "status"),
    [
        (b"", "image_unreadable", 400),
        (b"this is not an image", "image_unreadable", 400),
        (encode(synthetic_image(seed=1))[:200], "image_unreadable", 400),
    ],
)
def test_a_corrupt_upload_is_a_clear_4xx(
    api_a: Client, data: bytes, code: str, status: int
) -> None:
    response = upload(api_a, data)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code


def test_a_decompression_bomb_is_refused_as_too_large(api_a: Client, settings: Any) -> None:
    settings.HASHHUB_MAX_IMAGE_PIXELS = 10_000
    big = io.BytesIO()
    Image.new("L", (2000, 2000)).save(big, "PNG")
    response = upload(api_a, big.getvalue())
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "image_too_large"


def test_a_missing_image_field_is_a_400(api_a: Client) -> None:
    response = api_a.post("/api/v1/match/image", {"content_ref": "x"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "image_missing"


def test_no_uploaded_byte_is_kept(api_a: Client, org_a: Any, tmp_path: Any) -> None:
    marker = secrets.token_bytes(16)
    png = encode(synthetic_image(seed=8)) + marker  # trailing bytes survive decoding
    stored = hashes_of(png)
    add(own_list(org_a), ("md5", stored["md5"].text))
    assert upload(api_a, png).json()["detection"]
    with scope(organization=org_a.pk):
        detection = Detection.objects.get()
    assert marker.hex() not in json.dumps(detection.submitted) + json.dumps(detection.matches)


def test_a_large_image_still_matches_the_pdq_of_its_full_size_decoding(
    api_a: Client, org_a: Any
) -> None:
    """Large images are hashed reduced (issue 18); hashes shared from full-size decodings of the
    same picture must still match, a few bits away at most."""
    picture = synthetic_image(seed=12, size=(750, 500)).resize((3000, 2000))
    png = encode(picture, "PNG", compress_level=1)
    vector, _ = pdqhash.compute(np.asarray(picture))
    full_size = pdq_vector_to_bytes(vector).hex()
    add(own_list(org_a), ("pdq", full_size))
    body = upload(api_a, png).json()
    [hit] = {r["type"]: r for r in body["results"]}["pdq"]["matches"]
    assert hit["matched_value"] == full_size
    assert hit["distance"] <= 6
