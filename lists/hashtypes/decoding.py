"""Decode an upload once, in memory, for every signal type to hash.

Invariant #1 of the design: no image is ever stored. The bytes are wrapped in ``io.BytesIO`` and
decoded by Pillow without a file name, a temporary file or a log line; only formats decoded
in-process are accepted (never EPS and friends, which Pillow hands to Ghostscript via temporary
files). Size is capped in bytes before decoding and in pixels before the pixel data is read, so a
decompression bomb is refused from its header. Errors carry a code and a sentence but never any
of the uploaded bytes: they are raised outside Pillow's exception, whose text may quote the file.
"""

from __future__ import annotations

import io
import warnings

from PIL import Image

from lists.hashtypes.base import DecodedImage, ImageDecodeError

# Formats decoded entirely inside Pillow's own C code. The first frame of an animation is used.
ACCEPTED_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF", "AVIF")


def decode_image(data: bytes, *, max_bytes: int, max_pixels: int) -> DecodedImage:
    """Decode ``data`` into a :class:`DecodedImage` or raise :class:`ImageDecodeError`.

    ``image_unreadable`` for empty, truncated, corrupt or non-image data; ``image_too_large`` for
    more than ``max_bytes`` bytes or more than ``max_pixels`` pixels (Pillow's own decompression
    bomb limit also applies). No side effects: nothing is written or logged.
    """
    if max_bytes < 1 or max_pixels < 1:
        raise ValueError("max_bytes and max_pixels must be positive.")
    data = bytes(data)
    if not data:
        raise ImageDecodeError("image_unreadable", "The uploaded file is empty.")
    if len(data) > max_bytes:
        raise ImageDecodeError(
            "image_too_large",
            f"The uploaded file is {len(data)} bytes; the limit is {max_bytes} bytes.",
            {"size": len(data), "max_bytes": max_bytes},
        )
    outcome = _decode(data, max_pixels)
    if isinstance(outcome, ImageDecodeError):
        # Raised here, outside any except block, so Pillow's exception is not chained to it.
        raise outcome
    image, image_format = outcome
    return DecodedImage(data=data, image=image, format=image_format)


def _decode(data: bytes, max_pixels: int) -> tuple[Image.Image, str | None] | ImageDecodeError:
    Image.init()
    formats = [name for name in ACCEPTED_FORMATS if name in Image.OPEN]
    # catch_warnings swaps the process-wide filter list; under threads a concurrent decode may see
    # the other's filters for a moment. That is harmless: the pixel check below refuses what
    # Pillow only warns about, and the filters changed are the same in every decode.
    with warnings.catch_warnings():
        # Pillow's UserWarnings describe malformed files (bad EXIF, odd palettes); they are noise
        # in the logs for hostile input, so they are dropped rather than logged.
        warnings.simplefilter("ignore", UserWarning)
        # Pillow only *warns* between its limit and twice that; make it refuse instead.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data), formats=formats) as opened:
                width, height = opened.size
                if width * height > max_pixels:
                    return _too_many_pixels(width, height, max_pixels)
                opened.load()
                return opened.convert("RGB"), opened.format
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            return ImageDecodeError(
                "image_too_large",
                "The image has too many pixels to decode safely.",
                {"max_pixels": max_pixels},
            )
        except Exception:
            # Decoders fail on hostile input in many ways (OSError, SyntaxError, ValueError,
            # struct.error, EOFError...); each one is an unreadable upload, never a 500.
            return ImageDecodeError(
                "image_unreadable",
                "The uploaded file is not an image this hub can read (JPEG, PNG, GIF, WebP, BMP, "
                "TIFF or AVIF), or it is truncated or corrupt.",
            )


def _too_many_pixels(width: int, height: int, max_pixels: int) -> ImageDecodeError:
    return ImageDecodeError(
        "image_too_large",
        f"The image is {width}x{height} pixels; the limit is {max_pixels} pixels.",
        {"width": width, "height": height, "max_pixels": max_pixels},
    )
