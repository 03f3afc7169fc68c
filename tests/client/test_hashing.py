"""The client hashes a file exactly as the hub hashes the same upload.

The client cannot import the hub's lists.hashtypes (importing ``hub`` starts Celery, which imports
Django), so it repeats the decoding and hashing steps; these tests hold the two together for
synthetic pictures down every path of the hub's decoder.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from PIL import Image

from hashhub_client.hashing import WORK_PIXELS, hash_bytes, hash_file, iter_paths
from hashhub_client.signal_types import PDQ_MIN_QUALITY, SIGNAL_TYPES
from lists import hashtypes
from lists.hashtypes import decoding
from tests.client.conftest import encoded, synthetic_picture

Hashes = dict[str, tuple[str, int | None]]
"""Each hash's text and quality, by type."""


def hub_hashes(
    data: bytes,
) -> tuple[dict[str, tuple[str, int | None]], dict[str, tuple[str, int | None]]]:
    """What the hub computes for an upload: the hashes it reports (of the picture as displayed)
    and, for a picture with an EXIF orientation, the perceptual hashes of the stored pixels."""
    decoded = hashtypes.decode_image(data, max_bytes=1 << 28, max_pixels=200_000_000)
    displayed = decoded.as_displayed()
    reported = hashtypes.compute_all(displayed or decoded)
    stored = {} if displayed is None else hashtypes.compute_all(decoded)
    return (
        {name: (found.text, found.quality) for name, found in reported.items()},
        {
            name: (found.text, found.quality)
            for name, found in stored.items()
            if hashtypes.get_signal_type(name).kind == "perceptual"
        },
    )


def client_hashes(
    data: bytes,
) -> tuple[dict[str, tuple[str, int | None]], dict[str, tuple[str, int | None]]]:
    found = hash_bytes(data)
    assert found.image_error is None, found.image_error
    return (
        {name: (c.value, c.quality) for name, c in found.hashes.items()},
        {name: (c.value, c.quality) for name, c in found.stored.items()},
    )


def oriented(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encoded(synthetic_picture(8, (320, 200)), "JPEG", quality=90, exif=exif.tobytes())


PICTURES = {
    "small png": lambda: encoded(synthetic_picture(1, (300, 200))),
    "png reduced to the work size": lambda: encoded(synthetic_picture(2, (2000, 1500))),
    "jpeg scaled while decoding": lambda: encoded(synthetic_picture(3, (3000, 2000)), "JPEG"),
    "progressive jpeg": lambda: encoded(
        synthetic_picture(3, (1200, 900)), "JPEG", progressive=True
    ),
    "palette gif": lambda: encoded(synthetic_picture(4, (200, 200)).convert("P"), "GIF"),
    "transparent png": lambda: encoded(synthetic_picture(5, (200, 150)).convert("RGBA")),
    "transparent png reduced": lambda: encoded(synthetic_picture(5, (1800, 1400)).convert("RGBA")),
    "webp": lambda: encoded(synthetic_picture(6, (200, 150)), "WEBP"),
    "tiff": lambda: encoded(synthetic_picture(7, (200, 150)), "TIFF"),
    "bmp": lambda: encoded(synthetic_picture(7, (200, 150)), "BMP"),
    "jpeg turned by exif 6": lambda: oriented(6),
    "jpeg mirrored by exif 2": lambda: oriented(2),
}


@pytest.mark.parametrize("name", list(PICTURES))
def test_the_clients_hashes_equal_the_hubs(name: str) -> None:
    data = PICTURES[name]()

    assert client_hashes(data) == hub_hashes(data)


def test_the_reduced_paths_are_really_taken() -> None:
    # Otherwise the reduction cases above would prove nothing about reduction.
    assert 2000 * 1500 > WORK_PIXELS == decoding.WORK_PIXELS
    assert hash_bytes(oriented(6)).stored  # and the oriented ones carry stored hashes


def test_the_signal_types_are_the_hubs() -> None:
    hub = {t.name: t.describe() for t in hashtypes.all_signal_types()}

    assert {
        name: {
            "type": name,
            "kind": t.kind,
            "bits": t.bits,
            "default_max_distance": t.default_max_distance,
            "max_distance": t.max_distance,
        }
        for name, t in SIGNAL_TYPES.items()
    } == hub
    assert PDQ_MIN_QUALITY == hashtypes.PDQ_MIN_QUALITY


def test_a_plain_picture_is_hashed_but_its_pdq_is_not_matched_as_the_hub_would_not() -> None:
    data = encoded(Image.new("RGB", (128, 128), (120, 120, 120)))
    hub = hashtypes.compute_all(hashtypes.decode_image(data, max_bytes=1 << 20, max_pixels=1 << 22))
    assert hub["pdq"].low_quality

    found = hash_bytes(data)
    queries, errors = found.queries()

    quality = found.hashes["pdq"].quality
    assert quality == hub["pdq"].quality
    assert quality is not None
    assert quality < PDQ_MIN_QUALITY
    assert "pdq" not in {query.type for query in queries}
    assert [(error["type"], error["code"]) for error in errors] == [("pdq", "low_quality")]


def test_a_file_that_is_not_a_picture_gets_its_exact_hashes_only(tmp_path: Path) -> None:
    path = tmp_path / "clip.bin"
    data = b"\x00\x01 not a picture " * 100_000  # over a megabyte: streamed in chunks
    path.write_bytes(data)

    found = hash_file(path)

    assert {name: c.value for name, c in found.hashes.items()} == {
        "md5": hashlib.md5(data, usedforsecurity=False).hexdigest(),
        "sha1": hashlib.sha1(data, usedforsecurity=False).hexdigest(),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    assert found.image_error is not None
    assert found.image_error["code"] == "not_an_image"


def test_a_truncated_picture_gets_its_exact_hashes_and_the_reason() -> None:
    data = encoded(synthetic_picture(9))[:400]

    found = hash_bytes(data)

    assert set(found.hashes) == {"md5", "sha1", "sha256"}
    assert found.image_error is not None
    assert found.image_error["code"] == "image_unreadable"


def test_a_directory_stands_for_every_file_under_it(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    for name in ("b/2.png", "a.png", "b/1.png"):
        (tmp_path / name).write_bytes(b"x")

    assert list(iter_paths([str(tmp_path), "other"])) == [
        str(tmp_path / "a.png"),
        str(tmp_path / "b" / "1.png"),
        str(tmp_path / "b" / "2.png"),
        "other",
    ]
