"""Hashes computed from synthetic images agree with the libraries that define them.

Every image here is drawn by the test with a fixed seed: gradients, shapes and noise.
"""

from __future__ import annotations

import hashlib
import io
from typing import Any

import imagehash
import numpy as np
import pdqhash
import pytest
from PIL import Image, ImageDraw

from lists.hashtypes import (
    PDQ_MIN_QUALITY,
    DecodedImage,
    compute_all,
    decode_image,
    get_signal_type,
)

LIMITS: dict[str, Any] = {"max_bytes": 10_000_000, "max_pixels": 10_000_000}


def synthetic_image(seed: int = 7, size: tuple[int, int] = (256, 256)) -> Image.Image:
    """A busy picture: a colour gradient, random shapes and a little noise, fixed by ``seed``."""
    rng = np.random.default_rng(seed)
    width, height = size
    y, x = np.mgrid[0:height, 0:width]
    gradient = np.stack(
        [x * 255 // width, y * 255 // height, (x + y) * 255 // (width + height)], axis=-1
    )
    image = Image.fromarray(gradient.astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(14):
        x0, x1 = sorted(int(v) for v in rng.integers(0, width, 2))
        y0, y1 = sorted(int(v) for v in rng.integers(0, height, 2))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            draw.ellipse((x0, y0, x1 + 1, y1 + 1), fill=colour)
        else:
            draw.rectangle((x0, y0, x1, y1), fill=colour)
    noise = rng.integers(-12, 13, (height, width, 3))
    pixels = np.clip(np.asarray(image, dtype=np.int16) + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels, "RGB")


def encode(image: Image.Image, image_format: str = "PNG", **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format, **options)
    return buffer.getvalue()


def decoded(data: bytes) -> DecodedImage:
    return decode_image(data, **LIMITS)


def threatexchange_hex(vector: Any) -> str:
    """PDQ hex as python-threatexchange writes it: the bits as one binary number, 64 hex digits."""
    return f"{int(''.join(str(int(bit)) for bit in vector), 2):064x}"


@pytest.fixture(scope="module")
def png() -> bytes:
    return encode(synthetic_image())


def test_pdq_equals_calling_pdqhash_directly(png: bytes) -> None:
    vector, quality = pdqhash.compute(np.asarray(Image.open(io.BytesIO(png)).convert("RGB")))
    computed = get_signal_type("pdq").compute(decoded(png))
    assert computed is not None
    assert computed.text == threatexchange_hex(vector)
    assert computed.value == bytes.fromhex(threatexchange_hex(vector))
    assert computed.quality == quality


def test_pdq_of_a_jpeg_equals_pdqhash_on_its_decoded_pixels() -> None:
    jpeg = encode(synthetic_image(seed=11, size=(320, 200)), "JPEG", quality=85)
    vector, quality = pdqhash.compute(np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB")))
    computed = get_signal_type("pdq").compute(decoded(jpeg))
    assert computed is not None
    assert (computed.text, computed.quality) == (threatexchange_hex(vector), quality)


@pytest.mark.parametrize(
    ("set_bit", "expected"),
    [(0, "8" + "0" * 63), (3, "1" + "0" * 63), (4, "08" + "0" * 62), (255, "0" * 63 + "1")],
)
def test_pdq_text_puts_the_first_bit_of_pdqhashs_vector_first(
    monkeypatch: pytest.MonkeyPatch, png: bytes, set_bit: int, expected: str
) -> None:
    vector = np.zeros(256, dtype=np.int64)
    vector[set_bit] = 1
    monkeypatch.setattr(pdqhash, "compute", lambda _array: (vector, 100))
    computed = get_signal_type("pdq").compute(decoded(png))
    assert computed is not None
    assert computed.text == expected == threatexchange_hex(vector)


def test_phash_equals_imagehash_on_the_same_image(png: bytes) -> None:
    computed = get_signal_type("phash").compute(decoded(png))
    assert computed is not None
    assert computed.text == str(imagehash.phash(Image.open(io.BytesIO(png))))
    assert computed.value == bytes.fromhex(computed.text)


@pytest.mark.parametrize("name", ["md5", "sha1", "sha256"])
def test_exact_hashes_equal_hashlib_over_the_uploaded_bytes(png: bytes, name: str) -> None:
    computed = get_signal_type(name).compute(decoded(png))
    assert computed is not None
    assert computed.text == hashlib.new(name, png).hexdigest()
    assert computed.value == hashlib.new(name, png).digest()


def test_a_resized_jpeg_copy_is_near_in_pdq_while_its_md5_differs(png: bytes) -> None:
    copy = encode(Image.open(io.BytesIO(png)).resize((200, 200)), "JPEG", quality=70)
    original, recompressed = compute_all(decoded(png)), compute_all(decoded(copy))
    pdq = get_signal_type("pdq")
    distance = pdq.distance(original["pdq"].value, recompressed["pdq"].value)
    assert distance <= pdq.default_max_distance
    assert original["md5"].value != recompressed["md5"].value


def test_unrelated_images_are_far_apart_in_pdq() -> None:
    a = compute_all(decoded(encode(synthetic_image(seed=1))))
    b = compute_all(decoded(encode(synthetic_image(seed=2))))
    pdq = get_signal_type("pdq")
    assert pdq.distance(a["pdq"].value, b["pdq"].value) > pdq.max_distance


def test_a_flat_single_colour_image_has_low_pdq_quality_and_is_flagged() -> None:
    computed = get_signal_type("pdq").compute(
        decoded(encode(Image.new("RGB", (128, 128), (90, 140, 200))))
    )
    assert computed is not None
    assert computed.quality is not None
    assert computed.quality < PDQ_MIN_QUALITY == 50
    assert computed.low_quality


def test_a_detailed_image_has_good_pdq_quality_and_is_not_flagged(png: bytes) -> None:
    computed = get_signal_type("pdq").compute(decoded(png))
    assert computed is not None
    assert computed.quality is not None
    assert computed.quality >= PDQ_MIN_QUALITY
    assert not computed.low_quality


def test_compute_all_gives_every_type_but_photodna(png: bytes) -> None:
    computed = compute_all(decoded(png))
    assert list(computed) == ["md5", "sha1", "sha256", "pdq", "phash"]
    for name, result in computed.items():
        assert result.signal_type == name
        assert result.text == get_signal_type(name).to_text(result.value)
    assert computed["pdq"].quality is not None
    assert computed["md5"].quality is None


def test_photodna_cannot_be_computed_here(png: bytes) -> None:
    assert get_signal_type("photodna").compute(decoded(png)) is None


def test_an_image_with_transparency_is_hashed_from_its_colours() -> None:
    rgba = synthetic_image(seed=5).convert("RGBA")
    rgba.putalpha(128)
    computed = compute_all(decoded(encode(rgba)))
    vector, _quality = pdqhash.compute(np.asarray(rgba.convert("RGB")))
    assert computed["pdq"].text == threatexchange_hex(vector)
