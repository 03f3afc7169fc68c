"""POST /api/v1/match/image with dihedral=true, and images carrying an EXIF orientation."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pdqhash
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from PIL import Image, ImageOps

from lists.hashtypes import decode_image
from lists.hashtypes.pdq import DIHEDRAL_TRANSFORMS, pdq_dihedral, pdq_vector_to_bytes
from tests.lists.test_hashtypes_compute import encode, synthetic_image
from tests.matching.test_match_api import add, own_list
from tests.matching.test_match_image import hashes_of

pytestmark = pytest.mark.django_db

T = Image.Transpose
# Each transform as Pillow applies it: the upload is the listed picture turned this way.
PILLOW = {
    "rotate90": T.ROTATE_90,
    "rotate180": T.ROTATE_180,
    "rotate270": T.ROTATE_270,
    "flip_horizontal": T.FLIP_LEFT_RIGHT,
    "flip_vertical": T.FLIP_TOP_BOTTOM,
    "transpose": T.TRANSPOSE,
    "transverse": T.TRANSVERSE,
}
ORIENTATION = 0x0112


def upload(client: Client, data: bytes, **fields: Any) -> Any:
    return client.post(
        "/api/v1/match/image", {"image": SimpleUploadedFile("upload.bin", data), **fields}
    )


def pdq_result(body: dict[str, Any]) -> dict[str, Any]:
    [result] = [r for r in body["results"] if r["type"] == "pdq"]
    return result


def pdq_of(image: Image.Image) -> bytes:
    vector, _ = pdqhash.compute(np.asarray(image.convert("RGB")))
    return pdq_vector_to_bytes(vector)


def distance(a: bytes, b: bytes) -> int:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).bit_count()


def with_orientation(image: Image.Image, orientation: int, image_format: str = "PNG") -> bytes:
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    return encode(image, image_format, exif=exif.tobytes())


@pytest.fixture(scope="module", params=[(320, 320), (256, 256), (512, 384)], ids=str)
def original(request: pytest.FixtureRequest) -> Image.Image:
    # 256 and 512 px included: where a side is an even multiple of 64, pdqhash's one-pass
    # dihedral hashes were 24-40 bits from the hashes of the turned pictures themselves (0 at
    # 320 px), so the variants are hashed from the turned pictures (lists/hashtypes/pdq.py).
    return synthetic_image(seed=19, size=request.param)


def test_pdqhash_dihedral_outputs_are_named_by_the_pillow_transform_of_the_listed_picture(
    original: Image.Image,
) -> None:
    # Each variant is the hash of the turned picture, so a turned copy's variant is the listed
    # hash itself.
    listed = pdq_of(original)
    for name, method in PILLOW.items():
        hashes, quality = pdq_dihedral(decode_image(encode(original.transpose(method)), **BIG))
        assert quality >= 50
        distances = {other: distance(value, listed) for other, value in hashes.items()}
        assert min(distances, key=distances.__getitem__) == name
        assert distances[name] == 0
        assert sorted(distances.values())[1] > 31
    hashes, _ = pdq_dihedral(decode_image(encode(original), **BIG))
    assert list(hashes) == list(DIHEDRAL_TRANSFORMS)
    assert hashes["original"] == listed


@pytest.mark.parametrize("transform", sorted(PILLOW))
def test_a_turned_or_mirrored_copy_matches_with_dihedral_and_not_without(
    api_a: Client, org_a: Any, original: Image.Image, transform: str
) -> None:
    listed = hashes_of(encode(original))["pdq"].text
    add(own_list(org_a), ("pdq", listed))
    copy = encode(original.transpose(PILLOW[transform]))

    without = upload(api_a, copy).json()
    assert all(result["matches"] == [] for result in without["results"])
    assert without["detection"] is None

    body = upload(api_a, copy, dihedral="true").json()
    result = pdq_result(body)
    [match] = result["matches"]
    assert match["transform"] == transform
    assert match["matched_value"] == listed
    assert match["distance"] <= 31
    assert result["value"] == body["hashes"]["pdq"]["value"]
    assert result["match_count"] == 1
    assert body["detection"] is not None
    assert [r["type"] for r in body["results"]] == list(body["hashes"])


def test_the_upload_itself_reports_the_original_transform(
    api_a: Client, org_a: Any, original: Image.Image
) -> None:
    png = encode(original)
    add(own_list(org_a), ("pdq", hashes_of(png)["pdq"].text))
    [match] = pdq_result(upload(api_a, png, dihedral="true").json())["matches"]
    assert match["transform"] == "original"
    assert "orientation" not in match


def test_merged_matches_keep_the_cap_and_the_count(
    api_a: Client, org_a: Any, original: Image.Image
) -> None:
    listed = hashes_of(encode(original))["pdq"].text
    add(own_list(org_a), ("pdq", listed))
    add(own_list(org_a, "se"), ("pdq", listed))
    copy = encode(original.transpose(T.ROTATE_90))
    result = pdq_result(upload(api_a, copy, dihedral="true", max_matches="1").json())
    assert len(result["matches"]) == 1
    assert result["match_count"] == 2
    assert result["truncated"] is True


def test_a_plain_image_stays_low_quality_with_dihedral(api_a: Client) -> None:
    flat = encode(Image.new("RGB", (128, 128), (90, 90, 90)))
    result = pdq_result(upload(api_a, flat, dihedral="true").json())
    assert result["error"]["code"] == "low_quality"
    assert result["matches"] == []


@pytest.mark.parametrize("value", ["yes", "2", "TRUEISH", "[]"])
def test_a_dihedral_that_is_not_a_boolean_is_a_400(
    api_a: Client, original: Image.Image, value: str
) -> None:
    response = upload(api_a, encode(original), dihedral=value)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_dihedral"


def test_dihedral_false_is_the_plain_match(api_a: Client, original: Image.Image) -> None:
    response = upload(api_a, encode(original), dihedral="false")
    assert response.status_code == 200
    assert all(r["matches"] == [] for r in response.json()["results"])


# --- EXIF orientation ---------------------------------------------------------------------------

BIG = {"max_bytes": 1 << 26, "max_pixels": 1 << 26}


@pytest.mark.parametrize("orientation", range(1, 9))
def test_the_displayed_picture_is_what_imageops_exif_transpose_shows(
    original: Image.Image, orientation: int
) -> None:
    data = with_orientation(original, orientation)
    decoded = decode_image(data, **BIG)
    assert decoded.orientation == orientation
    displayed = decoded.as_displayed()
    expected = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
    if orientation == 1:
        assert displayed is None
    else:
        assert displayed is not None
        assert displayed.image.tobytes() == expected.tobytes()


def test_the_orientation_survives_a_decode_in_the_child_process(original: Image.Image) -> None:
    # TIFF is never decoded in-process when a CPU limit applies.
    decoded = decode_image(
        with_orientation(original, 6, "TIFF"), max_bytes=1 << 26, max_pixels=1 << 26
    )
    assert decoded.orientation == 6
    assert decoded.as_displayed() is not None


def test_an_oriented_image_matches_the_displayed_and_the_stored_pictures_hashes(
    api_a: Client, org_a: Any, original: Image.Image
) -> None:
    data = with_orientation(original, 6)
    displayed = original.transpose(T.ROTATE_270)
    add(own_list(org_a), ("pdq", pdq_of(displayed).hex()))
    add(own_list(org_a, "se"), ("pdq", pdq_of(original).hex()))

    body = upload(api_a, data).json()
    assert body["hashes"]["pdq"]["value"] == pdq_of(displayed).hex()
    by_category = {m["list"]["category"]: m for m in pdq_result(body)["matches"]}
    assert by_category["csam"]["orientation"] == "displayed"
    assert by_category["se"]["orientation"] == "stored"
    assert by_category["csam"]["distance"] == 0
    assert by_category["se"]["distance"] == 0

    # With dihedral, each says both: here the displayed picture, as it is, and the stored one.
    body = upload(api_a, data, dihedral="true").json()
    by_category = {m["list"]["category"]: m for m in pdq_result(body)["matches"]}
    assert by_category["csam"]["transform"] == "original"
    assert by_category["csam"]["orientation"] == "displayed"
    assert by_category["se"]["orientation"] in {"displayed", "stored"}


def test_an_image_without_orientation_reports_none(
    api_a: Client, org_a: Any, original: Image.Image
) -> None:
    png = encode(original)
    add(own_list(org_a), ("pdq", hashes_of(png)["pdq"].text))
    [match] = pdq_result(upload(api_a, png).json())["matches"]
    assert "orientation" not in match
    assert "transform" not in match
