"""Issue 18, bounded image cost: an image upload is refused early, decoded small, and stopped.

A request that declares more than the image limit is refused before its body is read; a body
that streams past it is refused at the limit, not at the hash files' 100 MB; formats that must be
decoded whole have a lower pixel cap than JPEG, which is decoded at a reduced scale; whatever is
still costly is stopped by the kernel after a fixed CPU time. Alice owns org A; every image is
drawn here with Pillow.
"""

from __future__ import annotations

import io
import os
import re
import signal
from typing import Any, cast

import imagehash
import numpy as np
import pdqhash
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.http.multipartparser import MultiPartParser
from django.test import Client
from PIL import Image, JpegImagePlugin

from hub import uploads
from hub.models import User
from lists.hashtypes import ImageDecodeError, compute_all, decode_image, decoding
from lists.hashtypes.pdq import pdq_vector_to_bytes
from tests.conftest import login
from tests.lists.test_hashtypes_compute import encode, synthetic_image
from tests.lists.test_hashtypes_decode import one_colour_png
from tests.lists.test_views import busy_png, url
from tests.matching.test_match_api import own_list

pytestmark = pytest.mark.django_db

SLACK = 64 * 1024  # the multipart allowance beside the image (hub.uploads.UPLOAD_SLACK)


class CountingInput:
    """A request body (wsgi.input) that records how much of it was read."""

    def __init__(self, data: bytes = b"") -> None:
        self._stream = io.BytesIO(data)
        self.read_bytes = 0

    def read(self, size: int = -1) -> bytes:
        chunk = self._stream.read(size)
        self.read_bytes += len(chunk)
        return chunk

    def readline(self, size: int = -1) -> bytes:
        line = self._stream.readline(size)
        self.read_bytes += len(line)
        return line


def multipart(field: str, data: bytes, boundary: str = "b0und4ry") -> tuple[bytes, str]:
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="i.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def upload(client: Client, data: bytes) -> Any:
    return client.post("/api/v1/match/image", {"image": SimpleUploadedFile("i.bin", data)})


def jpeg_with_many_scans(size: tuple[int, int], copies: int) -> bytes:
    """A progressive JPEG of one colour whose first AC scan is repeated ``copies`` times.

    libjpeg walks every block of the image once per scan, so it costs CPU in proportion to
    pixels x scans while the file stays small: an empty scan is a few dozen bytes.
    """
    data = encode(Image.new("RGB", size, (90, 120, 150)), "JPEG", progressive=True, quality=90)
    marker = re.compile(rb"\xff[^\x00\xd0-\xd7]")  # any marker but stuffing and restarts
    for found in re.finditer(rb"\xff\xda", data):
        start = found.start()
        header_end = start + 2 + int.from_bytes(data[start + 2 : start + 4], "big")
        components = data[start + 4]
        first, approximation = data[start + 5 + 2 * components], data[start + 7 + 2 * components]
        if first > 0 and approximation >> 4 == 0:  # an AC scan's first pass
            end = marker.search(data, header_end)
            assert end is not None
            scan = data[start : end.start()]
            return data[:-2] + scan * copies + data[-2:]
    raise AssertionError("the encoder wrote no AC first scan")


def never_decode(data: bytes, **limits: Any) -> Any:
    raise AssertionError("an upload over the image limit reached the decoder")


def pdq_bits_apart(a: bytes, b: bytes) -> int:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).bit_count()


# --- refused on the declared length and while streaming ------------------------------------------


def test_a_declared_length_over_the_image_limit_is_a_413_before_the_body_is_read(
    api_a: Client, settings: Any
) -> None:
    body = CountingInput(b"x" * 1024)
    declared = settings.HASHHUB_MAX_UPLOAD_BYTES + SLACK + 1  # far below the hash files' 100 MB
    response = api_a.generic(
        "POST",
        "/api/v1/match/image",
        CONTENT_TYPE="multipart/form-data; boundary=b0und4ry",
        CONTENT_LENGTH=str(declared),
        **{"wsgi.input": cast(Any, body)},
    )
    assert response.status_code == 413
    error = response.json()["error"]
    assert error["code"] == "image_too_large"
    assert f"the limit is {settings.HASHHUB_MAX_UPLOAD_BYTES} bytes" in error["message"]
    assert body.read_bytes == 0


def test_an_image_over_the_limit_is_refused_while_streaming_not_by_the_decoder(
    api_a: Client, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.HASHHUB_MAX_UPLOAD_BYTES = 4096
    data = busy_png(size=96)
    assert 4096 < len(data) < SLACK  # declared within the allowance: only streaming can see it
    monkeypatch.setattr("matching.services.decode_image", never_decode)
    response = upload(api_a, data)
    assert response.status_code == 413
    error = response.json()["error"]
    assert error["code"] == "image_too_large"
    assert "the limit is 4096 bytes" in error["message"]


def test_the_upload_handler_stops_reading_at_the_image_limit() -> None:
    body, content_type = multipart("image", os.urandom(1 << 20))
    stream = CountingInput(body)
    meta = {"CONTENT_TYPE": content_type, "CONTENT_LENGTH": str(len(body))}
    handler = uploads.MemoryOnlyUploadHandler(max_bytes=4096)
    parser = MultiPartParser(meta, cast(Any, stream), [handler])
    with pytest.raises(uploads.UploadTooLargeError) as refused:
        parser.parse()
    assert refused.value.max_bytes == 4096
    # Django reads in 64 kB chunks: the refusal comes within the first ones, not after 1 MB.
    assert stream.read_bytes <= 4 * 64 * 1024


def test_without_a_cap_the_handler_still_takes_what_a_hash_file_may_be() -> None:
    payload = os.urandom(1 << 20)
    body, content_type = multipart("file", payload)
    meta = {"CONTENT_TYPE": content_type, "CONTENT_LENGTH": str(len(body))}
    handler = uploads.MemoryOnlyUploadHandler()
    _, files = MultiPartParser(meta, cast(Any, CountingInput(body)), [handler]).parse()
    assert cast(Any, files["file"]).read() == payload


# --- the web page that hashes an image gets the same bounds ---------------------------------------


@pytest.fixture
def alice_csrf_client(alice: User) -> tuple[Client, str]:
    """Alice's client with CSRF enforced, as a browser meets it, and her token."""
    client = login(alice)
    client.handler.enforce_csrf_checks = True
    token = "a" * 32
    client.cookies["csrftoken"] = token
    return client, token


def test_the_image_page_refuses_a_declared_oversize_before_reading_for_the_csrf_token(
    alice_csrf_client: tuple[Client, str], org_a: Any, settings: Any
) -> None:
    client, _ = alice_csrf_client
    body = CountingInput(b"x" * 1024)
    response = client.generic(
        "POST",
        url(own_list(org_a), "image/"),
        CONTENT_TYPE="multipart/form-data; boundary=b0und4ry",
        CONTENT_LENGTH=str(settings.HASHHUB_MAX_UPLOAD_BYTES + SLACK + 1),
        **{"wsgi.input": cast(Any, body)},
    )
    assert response.status_code == 413
    assert "too large" in response.content.decode()
    assert body.read_bytes == 0


def test_the_image_page_refuses_an_image_while_streaming(
    alice_csrf_client: tuple[Client, str],
    org_a: Any,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client, token = alice_csrf_client
    settings.HASHHUB_MAX_UPLOAD_BYTES = 4096
    monkeypatch.setattr("lists.views.decode_image", never_decode)
    response = client.post(
        url(own_list(org_a), "image/"),
        {"image": SimpleUploadedFile("b.png", busy_png(size=96)), "csrfmiddlewaretoken": token},
    )
    assert response.status_code == 413
    assert "the limit is 4096 bytes" in response.content.decode()


def test_the_image_page_still_checks_the_csrf_token(
    alice_csrf_client: tuple[Client, str], org_a: Any
) -> None:
    client, token = alice_csrf_client
    image = busy_png()
    page = url(own_list(org_a), "image/")
    refused = client.post(page, {"image": SimpleUploadedFile("p.png", image)})
    assert refused.status_code == 403
    accepted = client.post(
        page, {"image": SimpleUploadedFile("p.png", image), "csrfmiddlewaretoken": token}
    )
    assert accepted.status_code == 200


# --- decoded small, capped where it cannot be -----------------------------------------------------


def test_a_png_over_the_full_decode_pixel_cap_is_a_413_with_a_clear_code(
    api_a: Client, settings: Any
) -> None:
    # 20 megapixels: within the general cap (50M), over the one for formats decoded whole.
    response = upload(api_a, one_colour_png(5000, 4000))
    assert response.status_code == 413
    error = response.json()["error"]
    assert error["code"] == "image_too_large"
    assert "5000x4000" in error["message"] and "only JPEG" in error["message"]
    assert settings.HASHHUB_MAX_IMAGE_PIXELS >= 5000 * 4000
    assert error["details"]["max_pixels"] == decoding.FULL_DECODE_MAX_PIXELS < 5000 * 4000


@pytest.fixture(scope="module")
def large_jpeg() -> tuple[bytes, Image.Image]:
    """A 12.6-megapixel JPEG and its full-size decoding."""
    picture = synthetic_image(seed=4, size=(1024, 768)).resize(
        (4096, 3072), Image.Resampling.BICUBIC
    )
    data = encode(picture, "JPEG", quality=90)
    return data, Image.open(io.BytesIO(data)).convert("RGB")


def test_a_large_jpeg_is_decoded_at_a_reduced_scale_with_its_hashes_near_the_full_ones(
    large_jpeg: tuple[bytes, Image.Image],
) -> None:
    data, full = large_jpeg
    decoded = decode_image(data, max_bytes=1 << 26, max_pixels=50_000_000)
    # Decoded at 1/2 scale (2048x1536), then halved again: within what the hashers are given.
    assert decoded.image.size == (1024, 768)
    computed = compute_all(decoded)
    vector, _ = pdqhash.compute(np.asarray(full))
    assert pdq_bits_apart(computed["pdq"].value, pdq_vector_to_bytes(vector)) <= 6
    assert imagehash.hex_to_hash(computed["phash"].text) - imagehash.phash(full) <= 4
    assert (computed["pdq"].quality or 0) >= 90


def test_jpeg_drafting_asks_for_no_less_than_the_hashers_need(
    large_jpeg: tuple[bytes, Image.Image], monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[tuple[int, int]] = []
    draft = JpegImagePlugin.JpegImageFile.draft

    def spy(self: Any, mode: str | None, size: tuple[int, int] | None) -> Any:
        assert size is not None
        asked.append(size)
        return draft(self, mode, size)

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    data, _ = large_jpeg
    decoded = decode_image(data, max_bytes=1 << 26, max_pixels=50_000_000, cpu_seconds=None)
    assert asked == [(1366, 1024)]  # a third of each side: at most WORK_PIXELS, never below
    assert decoded.width * decoded.height <= decoding.WORK_PIXELS


def test_a_small_progressive_jpeg_that_takes_too_long_is_stopped_as_too_complex() -> None:
    # One megapixel (no pixel cap applies) and 400 kB, but seconds of decoding: 20,000 scans.
    data = jpeg_with_many_scans((1000, 1000), 20_000)
    assert len(data) < 1_000_000
    with pytest.raises(ImageDecodeError) as refused:
        decode_image(data, max_bytes=1 << 26, max_pixels=50_000_000, cpu_seconds=0.3)
    assert (refused.value.code, refused.value.status) == ("image_too_complex", 413)
    assert refused.value.details == {"cpu_seconds": 0.3}


def test_a_jpeg_with_a_few_extra_scans_is_still_hashed() -> None:
    data = jpeg_with_many_scans((640, 480), 20)
    decoded = decode_image(data, max_bytes=1 << 26, max_pixels=50_000_000)
    assert decoded.image.size == (640, 480)


def test_a_large_png_decoded_in_a_child_equals_decoding_it_here() -> None:
    picture = synthetic_image(seed=6, size=(750, 500)).resize((3000, 2000))
    data = encode(picture, "PNG", compress_level=1)
    child = decode_image(data, max_bytes=1 << 26, max_pixels=50_000_000)
    here = decode_image(data, max_bytes=1 << 26, max_pixels=50_000_000, cpu_seconds=None)
    assert child.image.size == here.image.size == (1500, 1000)
    assert child.image.tobytes() == here.image.tobytes()
    assert child.format == here.format == "PNG"


# --- corrupt, truncated and crashing -------------------------------------------------------------


def _large_png() -> bytes:
    return encode(synthetic_image(seed=2, size=(2000, 1500)), "PNG", compress_level=1)


def _large_jpeg() -> bytes:
    return encode(synthetic_image(seed=2, size=(2000, 1500)), "JPEG", quality=90)


@pytest.mark.parametrize(
    "make",
    [
        lambda: _large_jpeg()[: len(_large_jpeg()) // 2],
        lambda: _large_png()[: len(_large_png()) // 2],
        lambda: one_colour_png(3000, 2000)[:-40] + os.urandom(40),
        lambda: _large_jpeg()[:600] + bytes(1000),
        lambda: encode(synthetic_image(seed=3), "JPEG", progressive=True)[:900],
    ],
    ids=["jpeg-cut", "png-cut", "png-garbage-tail", "jpeg-zeroed", "progressive-jpeg-cut"],
)
def test_a_corrupt_or_truncated_image_is_a_clear_4xx(api_a: Client, make: Any) -> None:
    response = upload(api_a, make())
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "image_unreadable"


def test_a_decoder_that_crashes_is_an_unreadable_image_and_leaves_no_core_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.chdir(tmp_path)  # where the kernel would write "core"
    monkeypatch.setattr(decoding, "_pixels", lambda opened: os.kill(os.getpid(), signal.SIGSEGV))
    data = encode(synthetic_image(seed=1, size=(64, 48)), "TIFF")  # TIFF: decoded in a child
    with pytest.raises(ImageDecodeError) as refused:
        decode_image(data, max_bytes=1 << 26, max_pixels=50_000_000)
    assert (refused.value.code, refused.value.status) == ("image_unreadable", 400)
    assert os.listdir(tmp_path) == []
