"""Hash a file in memory the way the hub hashes an upload (``POST /api/v1/match/image``).

Nothing is written anywhere: exact digests are taken while the file streams through, and Pillow
decodes the picture from the open file. The steps mirror the hub's ``lists.hashtypes`` (which the
client cannot import without Django: see :mod:`hashhub_client.signal_types`), and
tests/client/test_hashing.py proves the values equal for synthetic pictures of every path
(small, reduced, JPEG scaled while decoding, palette, transparent, EXIF-oriented):

- MD5, SHA-1 and SHA-256 over the file's bytes as they are;
- the first frame of a JPEG, PNG, GIF, WebP, BMP, TIFF or AVIF file, converted to RGB and
  reduced by a whole factor to at most ``WORK_PIXELS`` (JPEG first by DCT scaling), then PDQ
  (pdqhash, packed most significant bit first) with its quality and pHash (imagehash's text);
- for a picture with an EXIF orientation, those of the picture as displayed (what the hub
  reports) and, labelled ``stored``, the perceptual hashes of the pixels as stored.

A file that is not a picture of those formats gets its exact hashes only, with the reason.
Unlike the hub, the client decodes in its own process without a CPU limit: it hashes the
platform's own files, not a stranger's upload. Pillow's decompression-bomb guard still applies.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from hashhub_client.signal_types import PDQ_MIN_QUALITY

ACCEPTED_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF", "AVIF")
"""The formats the hub decodes (lists.hashtypes.decoding.ACCEPTED_FORMATS)."""

WORK_PIXELS = 1 << 21
"""The most pixels the perceptual hashers are given (lists.hashtypes.decoding.WORK_PIXELS)."""

_READ_CHUNK = 1 << 20
_EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True)
class Computed:
    """One hash of a file: its type, its canonical text (lowercase hex) and PDQ's quality."""

    type: str
    value: str
    quality: int | None = None

    @property
    def low_quality(self) -> bool:
        """PDQ below the hub's threshold: the hub does not match it (too plain a picture)."""
        return self.quality is not None and self.quality < PDQ_MIN_QUALITY

    def as_dict(self) -> dict[str, Any]:
        shown: dict[str, Any] = {"value": self.value}
        if self.quality is not None:
            shown["quality"] = self.quality
        return shown


@dataclass(frozen=True)
class Query:
    """One hash to match, with what it is of (``{"orientation": "stored"}``, say)."""

    type: str
    value: str
    labels: tuple[tuple[str, str], ...] = ()


@dataclass
class FileHashes:
    """Every hash of one file. ``hashes`` are what the hub would report for the upload;
    ``stored`` the perceptual hashes of an EXIF-oriented picture's pixels as stored;
    ``image_error`` why there are no perceptual hashes (``{"code", "message"}``)."""

    path: str
    size: int
    hashes: dict[str, Computed] = field(default_factory=dict)
    stored: dict[str, Computed] = field(default_factory=dict)
    image_error: dict[str, str] | None = None

    def queries(self) -> tuple[list[Query], list[dict[str, str]]]:
        """The hashes to match, and an error for each the hub would not match (low quality)."""
        queries: list[Query] = []
        errors: list[dict[str, str]] = []
        labelled = [(self.hashes, "displayed" if self.stored else None)]
        if self.stored:
            labelled.append((self.stored, "stored"))
        for hashes, orientation in labelled:
            labels = (("orientation", orientation),) if orientation else ()
            for computed in hashes.values():
                if computed.low_quality:
                    errors.append(
                        {
                            "type": computed.type,
                            "value": computed.value,
                            "code": "low_quality",
                            "message": f"The {computed.type} hash has quality "
                            f"{computed.quality}, below {PDQ_MIN_QUALITY}: the image is too "
                            "plain to match reliably, so it was not matched.",
                        }
                    )
                    continue
                queries.append(Query(computed.type, computed.value, labels))
        return queries, errors

    def as_dict(self) -> dict[str, Any]:
        shown: dict[str, Any] = {
            "path": self.path,
            "hashes": {name: computed.as_dict() for name, computed in self.hashes.items()},
        }
        if self.stored:
            shown["stored"] = {name: computed.as_dict() for name, computed in self.stored.items()}
        if self.image_error is not None:
            shown["image_error"] = self.image_error
        return shown


def hash_file(path: str | Path) -> FileHashes:
    """Hash one file (raises OSError when it cannot be read)."""
    with open(path, "rb") as stream:
        return hash_stream(stream, str(path))


def hash_bytes(data: bytes, name: str = "-") -> FileHashes:
    """Hash bytes already in memory (standard input, or a test's picture)."""
    return hash_stream(io.BytesIO(data), name)


def hash_stream(stream: IO[bytes], name: str) -> FileHashes:
    """Hash a seekable binary stream from its start: exact digests, then the picture."""
    digests = {
        "md5": hashlib.md5(usedforsecurity=False),
        "sha1": hashlib.sha1(usedforsecurity=False),
        "sha256": hashlib.sha256(),
    }
    size = 0
    for chunk in iter(lambda: stream.read(_READ_CHUNK), b""):
        size += len(chunk)
        for digest in digests.values():
            digest.update(chunk)
    found = FileHashes(
        path=name,
        size=size,
        hashes={kind: Computed(kind, digest.hexdigest()) for kind, digest in digests.items()},
    )
    if size == 0:
        found.image_error = {"code": "not_an_image", "message": "The file is empty."}
        return found
    stream.seek(0)
    try:
        image, orientation = _decode(stream)
    except _NotAPictureError as refusal:
        found.image_error = {"code": refusal.code, "message": refusal.message}
        return found
    displayed = _displayed(image, orientation)
    found.hashes.update(perceptual_hashes(displayed if displayed is not None else image))
    if displayed is not None:
        found.stored = perceptual_hashes(image)
    return found


def perceptual_hashes(image: Any) -> dict[str, Computed]:
    """PDQ (with its quality) and pHash of an RGB Pillow image, as the hub computes them."""
    import imagehash
    import numpy as np
    import pdqhash

    vector, quality = pdqhash.compute(np.asarray(image, dtype=np.uint8))
    bits = np.asarray(vector)
    if bits.shape != (256,):
        raise ValueError("pdqhash returned something other than 256 bits.")
    pdq = np.packbits(bits.astype(np.uint8), bitorder="big").tobytes().hex()
    return {
        "pdq": Computed("pdq", pdq, int(quality)),
        "phash": Computed("phash", str(imagehash.phash(image))),
    }


def reduction_factor(width: int, height: int) -> int:
    """The smallest whole factor that brings a width x height image within WORK_PIXELS."""
    factor = max(1, math.isqrt(width * height // WORK_PIXELS))
    while -(-width // factor) * -(-height // factor) > WORK_PIXELS:
        factor += 1
    return factor


class _NotAPictureError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _decode(stream: IO[bytes]) -> tuple[Any, int]:
    """The first frame's RGB pixels, reduced to at most WORK_PIXELS, and the EXIF orientation."""
    from PIL import Image, UnidentifiedImageError

    Image.init()
    formats = [name for name in ACCEPTED_FORMATS if name in Image.OPEN]
    with _decoding_warnings():
        try:
            with Image.open(stream, formats=formats) as opened:
                orientation = _orientation(Image, opened)
                return _pixels(opened), orientation
        except UnidentifiedImageError:
            raise _NotAPictureError(
                "not_an_image",
                f"Not a picture in a format the hub hashes ({', '.join(ACCEPTED_FORMATS)}): "
                "exact hashes only.",
            ) from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise _NotAPictureError(
                "image_too_large", "The picture has too many pixels to decode: exact hashes only."
            ) from None
        except Exception as error:
            raise _NotAPictureError(
                "image_unreadable",
                f"The picture could not be decoded ({type(error).__name__}): exact hashes only.",
            ) from None


@contextlib.contextmanager
def _decoding_warnings() -> Iterator[None]:
    """Pillow's warnings about malformed files are dropped; its bomb warning becomes an error."""
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        yield


def _orientation(image_module: Any, opened: Any) -> int:
    """The EXIF orientation (1-8), read as the hub reads it (from the header), else 1."""
    try:
        if opened.format == "TIFF":
            value = opened.getexif().get(_EXIF_ORIENTATION, 1)
        else:
            raw = opened.info.get("exif")
            if not isinstance(raw, bytes | bytearray) or not raw:
                return 1
            exif = image_module.Exif()
            exif.load(bytes(raw))
            value = exif.get(_EXIF_ORIENTATION, 1)
    except Exception:
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _pixels(opened: Any) -> Any:
    """The RGB pixels of the first frame, reduced to at most WORK_PIXELS (as the hub does)."""
    factor = reduction_factor(*opened.size)
    if factor > 1 and opened.format == "JPEG":
        width, height = opened.size
        opened.draft(None, (-(-width // factor), -(-height // factor)))
    opened.load()
    factor = reduction_factor(*opened.size)
    if factor == 1:
        return opened.convert("RGB")
    rgb = opened if opened.mode == "RGB" else opened.convert("RGB")
    return rgb.reduce(factor)


def _displayed(image: Any, orientation: int) -> Any | None:
    """The picture as a viewer shows it (its EXIF orientation applied), or None without one."""
    from PIL import Image

    method = {
        2: Image.Transpose.FLIP_LEFT_RIGHT,
        3: Image.Transpose.ROTATE_180,
        4: Image.Transpose.FLIP_TOP_BOTTOM,
        5: Image.Transpose.TRANSPOSE,
        6: Image.Transpose.ROTATE_270,
        7: Image.Transpose.TRANSVERSE,
        8: Image.Transpose.ROTATE_90,
    }.get(orientation)
    return None if method is None else image.transpose(method)


def iter_paths(paths: list[str]) -> Iterator[str]:
    """The files named, with each directory's files (recursively, in name order)."""
    for given in paths:
        path = Path(given)
        if path.is_dir():
            for found in sorted(path.rglob("*")):
                if found.is_file():
                    yield str(found)
        else:
            yield given
