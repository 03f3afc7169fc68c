"""Decoding uploads: in memory only, capped in bytes and pixels, with clear error codes."""

from __future__ import annotations

import functools
import io
import logging
import os
import struct
import sys
import tempfile
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from lists.hashtypes import DecodedImage, ImageDecodeError, compute_all, decode_image, decoding

ROOMY = 10_000_000


def encode(image: Image.Image, image_format: str = "PNG", **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format, **options)
    return buffer.getvalue()


def noisy_png(size: tuple[int, int] = (128, 128), seed: int = 3) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return encode(Image.fromarray(pixels, "RGB"))


@functools.cache
def one_colour_png(width: int, height: int) -> bytes:
    """A valid 1-bit PNG of one colour: huge in pixels, a few kilobytes on disk.

    Written chunk by chunk so the test never holds the whole image in memory either.
    """

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    compressor = zlib.compressobj(9)
    row = bytes(1 + (width + 7) // 8)  # filter byte 0, then all-black pixels
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def decode_error(
    data: bytes, *, max_bytes: int = ROOMY, max_pixels: int = ROOMY
) -> ImageDecodeError:
    with pytest.raises(ImageDecodeError) as caught:
        decode_image(data, max_bytes=max_bytes, max_pixels=max_pixels)
    return caught.value


def test_it_decodes_a_png_once_into_rgb_keeping_the_uploaded_bytes() -> None:
    data = noisy_png((40, 30))
    image = decode_image(data, max_bytes=ROOMY, max_pixels=ROOMY)
    assert image.data == data
    assert image.image.mode == "RGB"
    assert (image.width, image.height, image.format) == (40, 30, "PNG")
    assert image.rgb_array.shape == (30, 40, 3)
    assert image.rgb_array.dtype == np.uint8
    assert image.rgb_array is image.rgb_array


@pytest.mark.parametrize(
    ("mode", "image_format"),
    [
        ("RGBA", "PNG"),
        ("L", "PNG"),
        ("P", "GIF"),
        ("RGB", "JPEG"),
        ("CMYK", "TIFF"),
        ("RGB", "WEBP"),
    ],
)
def test_it_decodes_common_formats_and_modes_to_rgb(mode: str, image_format: str) -> None:
    source = Image.new("RGB", (24, 16), (10, 200, 30)).convert(mode)
    decoded = decode_image(encode(source, image_format), max_bytes=ROOMY, max_pixels=ROOMY)
    assert (decoded.image.mode, decoded.format) == ("RGB", image_format)


def test_a_palette_image_with_transparency_decodes_without_a_warning() -> None:
    source = Image.new("P", (16, 16), 1)
    source.putpalette([0, 0, 0, 255, 0, 0] * 128)
    data = encode(source, "PNG", transparency=bytes([0, 128] + [255] * 254))
    decoded = decode_image(data, max_bytes=ROOMY, max_pixels=ROOMY)
    assert decoded.image.getpixel((0, 0)) == (255, 0, 0)


def test_the_repr_of_a_decoded_image_shows_its_size_not_its_bytes() -> None:
    decoded = decode_image(noisy_png((40, 30)), max_bytes=ROOMY, max_pixels=ROOMY)
    assert repr(decoded) == f"<DecodedImage PNG 40x30, {len(decoded.data)} bytes>"


def test_an_empty_upload_is_unreadable() -> None:
    error = decode_error(b"")
    assert (error.code, error.status) == ("image_unreadable", 400)
    assert error.message == "The uploaded file is empty."


def test_random_bytes_are_unreadable() -> None:
    assert decode_error(np.random.default_rng(9).bytes(4096)).code == "image_unreadable"


def test_a_truncated_png_is_unreadable() -> None:
    data = noisy_png()
    assert decode_error(data[: len(data) * 3 // 5]).code == "image_unreadable"


def test_a_png_cut_inside_its_header_is_unreadable() -> None:
    assert decode_error(noisy_png()[:20]).code == "image_unreadable"


def test_a_text_file_is_unreadable() -> None:
    error = decode_error(b"id,hash\n1,d41d8cd98f00b204e9800998ecf8427e\n")
    assert error.code == "image_unreadable"
    assert "JPEG, PNG" in error.message


def test_a_postscript_file_is_unreadable_rather_than_handed_to_ghostscript() -> None:
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n%%EOF\n"
    assert decode_error(eps).code == "image_unreadable"


def test_a_file_over_max_bytes_is_too_large_before_it_is_decoded() -> None:
    data = noisy_png()
    error = decode_error(data, max_bytes=len(data) - 1)
    assert (error.code, error.status) == ("image_too_large", 413)
    assert error.details == {"size": len(data), "max_bytes": len(data) - 1}
    assert decode_image(data, max_bytes=len(data), max_pixels=ROOMY).data == data


def test_an_image_over_max_pixels_is_too_large() -> None:
    data = encode(Image.new("RGB", (20, 20), (1, 2, 3)))
    error = decode_error(data, max_pixels=399)
    assert error.code == "image_too_large"
    assert error.message == "The image is 20x20 pixels; the limit is 399 pixels."
    assert decode_image(data, max_bytes=ROOMY, max_pixels=400).width == 20


def test_a_tiny_png_claiming_20000_by_20000_pixels_is_too_large() -> None:
    data = one_colour_png(20_000, 20_000)
    assert len(data) < 100_000
    assert decode_error(data).code == "image_too_large"


def test_pillows_own_bomb_limit_refuses_even_when_max_pixels_is_generous() -> None:
    # 400 million pixels: beyond twice Pillow's limit, so Pillow raises DecompressionBombError.
    error = decode_error(one_colour_png(20_000, 20_000), max_pixels=10**12)
    assert error.code == "image_too_large"


def test_pillows_bomb_warning_becomes_the_error_and_is_never_emitted() -> None:
    # 100 million pixels: above Pillow's limit but below twice it, where Pillow only warns.
    data = one_colour_png(10_000, 10_000)
    with warnings.catch_warnings(record=True) as emitted:
        warnings.simplefilter("always")
        error = decode_error(data, max_pixels=10**12)
    assert error.code == "image_too_large"
    assert emitted == []


MARKER = b"SECRET-PIXELS-0123456789"


@pytest.mark.parametrize(
    "data",
    [
        b"\x89PNG\r\n\x1a\n" + MARKER * 4,
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0d" + MARKER,
        b"GIF89a" + MARKER * 8,
        b"\xff\xd8\xff\xe0" + MARKER * 8,
        noisy_png()[:300] + MARKER,
    ],
    ids=["png-signature", "png-bad-chunk", "gif", "jpeg", "png-cut"],
)
def test_errors_and_logs_never_contain_the_uploaded_bytes(
    data: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    error = decode_error(data)
    assert error.code == "image_unreadable"
    # Pillow's own exception may quote the file; it must not ride along as a cause or context.
    assert error.__cause__ is None
    assert error.__context__ is None
    shown = " ".join([str(error), repr(error), error.message, repr(error.details), caplog.text])
    assert MARKER.decode() not in shown
    assert "SECRET" not in shown


# Audit hooks cannot be removed, so one hook is installed for the session and records only
# while a test has put a list here.
_recording: list[tuple[str, str]] | None = None
_hook_installed = False
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND


def _record_disk_activity(event: str, args: tuple[Any, ...]) -> None:
    """Note file writes, temporary files and subprocesses (Ghostscript, say) while recording."""
    if _recording is None:
        return
    if event == "open":
        path, mode, flags = args
        if (isinstance(mode, str) and set(mode) & set("wax+")) or (
            mode is None and flags & _WRITE_FLAGS
        ):
            _recording.append((event, str(path)))
    elif event.startswith(("tempfile.", "subprocess.", "os.mkdir", "os.rename", "shutil.")):
        _recording.append((event, repr(args)[:80]))


@pytest.fixture
def disk_activity(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[tuple[Path, list[tuple[str, str]]]]:
    """Point every temporary-file API at an empty directory and record writes meanwhile."""
    global _recording, _hook_installed
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    monkeypatch.setenv("TMPDIR", str(scratch))
    if not _hook_installed:
        sys.addaudithook(_record_disk_activity)
        _hook_installed = True
    events: list[tuple[str, str]] = []
    _recording = events
    try:
        yield scratch, events
    finally:
        _recording = None


def test_decoding_and_hashing_write_nothing_to_disk(
    disk_activity: tuple[Path, list[tuple[str, str]]],
) -> None:
    scratch, events = disk_activity
    images: list[DecodedImage] = []
    for data in [
        noisy_png(),
        encode(Image.new("RGB", (64, 48), (5, 6, 7)), "JPEG"),
        encode(Image.new("RGB", (64, 48), (5, 6, 7)), "TIFF"),
    ]:
        images.append(decode_image(data, max_bytes=ROOMY, max_pixels=ROOMY))
    for image in images:
        compute_all(image)
    for bad in [b"", b"not an image", noisy_png()[:200], one_colour_png(20_000, 20_000)]:
        with pytest.raises(ImageDecodeError):
            decode_image(bad, max_bytes=ROOMY, max_pixels=ROOMY)
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n%%EOF\n"
    with pytest.raises(ImageDecodeError):
        decode_image(eps, max_bytes=ROOMY, max_pixels=ROOMY)
    assert tempfile.gettempdir() == str(scratch)
    assert os.listdir(scratch) == []
    assert events == []


@pytest.mark.parametrize(("max_bytes", "max_pixels"), [(0, 10), (10, 0), (-1, -1)])
def test_it_refuses_limits_that_are_not_positive(max_bytes: int, max_pixels: int) -> None:
    with pytest.raises(ValueError, match="positive"):
        decode_image(noisy_png(), max_bytes=max_bytes, max_pixels=max_pixels)


def test_the_disk_watch_does_notice_a_write(
    disk_activity: tuple[Path, list[tuple[str, str]]],
) -> None:
    # Without this, the test above could pass because the hook saw nothing at all.
    scratch, events = disk_activity
    (scratch / "written.bin").write_bytes(b"x")
    handle, _path = tempfile.mkstemp()
    os.close(handle)
    assert ("open", str(scratch / "written.bin")) in events
    assert any(event.startswith("tempfile.") for event, _ in events)


# --- bounded cost: reduced for the hashers, capped where it cannot be (issue 18) ---------------


@pytest.mark.parametrize(
    "size", [(1, 1), (1448, 1448), (1449, 1449), (4000, 3000), (7071, 7071), (65_000, 30)]
)
def test_the_reduction_factor_is_the_smallest_that_fits_the_hashers(size: tuple[int, int]) -> None:
    width, height = size

    def fits(factor: int) -> bool:
        return -(-width // factor) * -(-height // factor) <= decoding.WORK_PIXELS

    factor = decoding.reduction_factor(width, height)
    assert fits(factor)
    assert factor == 1 or not fits(factor - 1)


def test_an_image_that_fits_the_hashers_is_decoded_whole() -> None:
    data = noisy_png((1448, 1448))
    decoded = decode_image(data, max_bytes=ROOMY, max_pixels=ROOMY)
    assert decoded.image.size == (1448, 1448)
    assert decoded.image.tobytes() == Image.open(io.BytesIO(data)).convert("RGB").tobytes()


def test_formats_decoded_whole_have_a_lower_pixel_cap_than_jpeg() -> None:
    error = decode_error(one_colour_png(5000, 4000), max_pixels=50_000_000)
    assert (error.code, error.status) == ("image_too_large", 413)
    assert error.details == {"width": 5000, "height": 4000, "max_pixels": 12_000_000}
    assert error.message == (
        "The image is 5000x4000 pixels; the limit is 12000000 pixels for PNG "
        "(only JPEG can be decoded at a reduced scale)."
    )
    jpeg = encode(Image.new("RGB", (5000, 4000), (9, 99, 199)), "JPEG")
    decoded = decode_image(jpeg, max_bytes=ROOMY, max_pixels=50_000_000)
    assert decoded.width * decoded.height <= decoding.WORK_PIXELS
    assert decoded.image.getpixel((10, 10)) == pytest.approx((9, 99, 199), abs=2)


def test_a_large_image_drops_its_alpha_before_it_is_reduced_as_a_small_one_does() -> None:
    # A checker of transparent red and opaque blue: converting to RGB ignores alpha, so the
    # reduced pixels are purple; reducing RGBA first would weigh by alpha and give blue.
    rows, cols = np.indices((2000, 3000))
    checker = ((rows + cols) % 2).astype(bool)
    pixels = np.where(checker[..., None], [0, 0, 200, 255], [200, 0, 0, 0]).astype(np.uint8)
    data = encode(Image.fromarray(pixels, "RGBA"))
    decoded = decode_image(data, max_bytes=ROOMY, max_pixels=ROOMY)
    assert decoded.image.size == (1500, 1000)
    assert decoded.image.getpixel((700, 500)) == (100, 0, 100)
