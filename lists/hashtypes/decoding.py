"""Decode an upload once, in memory, for every signal type to hash, at a bounded cost.

Invariant #1 of the design: no image is ever stored. The bytes are wrapped in ``io.BytesIO`` and
decoded by Pillow without a file name, a temporary file or a log line; only formats decoded
in-process are accepted (never EPS and friends, which Pillow hands to Ghostscript via temporary
files). Size is capped in bytes before decoding and in pixels before the pixel data is read, so a
decompression bomb is refused from its header. Errors carry a code and a sentence but never any
of the uploaded bytes: they are raised outside Pillow's exception, whose text may quote the file.

Invariant #9: decoding is bounded. The numbers below were measured on the reference machine
(2 cores, `bench/match_image.py`):

* Hashing a 49-megapixel image at full size took 6.5 s (pdqhash filters every pixel in floats,
  imagehash resizes every pixel with Lanczos) and 1.7 GB. Both hashes only need a small picture
  (PDQ ends in a 64x64 buffer and its reference code itself downsamples to 512 px first; pHash
  works at 32x32), so the decoded image is reduced by a whole factor (a box filter, like PDQ's own
  Jarosz filter) to at most WORK_PIXELS before hashing: under 60 ms for both hashes.
  Images that already fit are hashed exactly as before; larger ones move by a few PDQ bits.
* JPEG can decode straight at 1/2, 1/4 or 1/8 scale (``Image.draft``, DCT scaling): a
  49-megapixel baseline JPEG decodes in 0.06 s instead of 0.6 s. So JPEG keeps the general
  ``max_pixels`` cap.
* Other formats (PNG, WebP, GIF, TIFF, BMP, AVIF) must be decoded whole, at 20 ns (8-bit PNG)
  to 55-90 ns (16-bit RGBA PNG with the Paeth filter, lossless WebP) of CPU per pixel, so they
  are capped at FULL_DECODE_MAX_PIXELS, where the slowest takes about 0.65 s and 170 MB.
* No pixel cap bounds everything: a 500 kB, 49-megapixel progressive JPEG repeating one empty
  scan 1,000 times took 13 s (libjpeg walks every block once per scan; 20,000 such scans of a
  1-megapixel image are no better), a 31 MB noisy progressive JPEG 3.8 s even at 1/8 scale, and
  Pillow decodes RLE bitmaps in Python. Pillow decodes in C, where no Python
  timer can interrupt it, so every image that is not small and simple is decoded in a forked
  child process that the kernel stops after DECODE_CPU_SECONDS of CPU (a profiling timer, with
  RLIMIT_CPU behind it). The child sends back only the reduced pixels; its memory goes with it.
  Forking costs about 13 ms here, which small, simple images (the usual upload) are spared: they
  are decoded in-process, where their cost is bounded by their size (under 0.2 s at WORK_PIXELS
  for the slowest of the formats allowed there).
"""

from __future__ import annotations

import contextlib
import ctypes
import faulthandler
import io
import math
import os
import resource
import select
import signal
import struct
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NoReturn

from PIL import Image

from lists.hashtypes.base import DecodedImage, ImageDecodeError

# Formats decoded entirely inside Pillow's own C code. The first frame of an animation is used.
ACCEPTED_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF", "AVIF")

# The most pixels the hashers are given: about 1448x1448. Hashing this many takes ~60 ms.
WORK_PIXELS = 1 << 21
# The most pixels of an image that cannot be decoded at a reduced scale (all but JPEG): 4000x3000,
# a 12-megapixel camera's picture. The slowest of these formats to decode (16-bit RGBA PNG)
# takes about 0.65 s of CPU at this size, within DECODE_CPU_SECONDS with room to spare; at
# 16 megapixels it took 0.77-0.86 s, so whether it was hashed depended on the machine's load.
FULL_DECODE_MAX_PIXELS = 12_000_000
# CPU time a forked decoder may use before the kernel stops it. With the hashing that follows,
# the worst image the hub accepts costs under a second of a core.
DECODE_CPU_SECONDS = 0.8
# A wall-clock backstop for a child that gets no CPU at all (it is killed, never waited for).
DECODE_WALL_SECONDS = 30.0

# Formats whose decoding time is bounded by their pixel count alone, decoded in-process when
# they fit WORK_PIXELS. A JPEG qualifies only with few scans (see _is_small_and_simple).
_IN_PROCESS_FORMATS = frozenset({"PNG", "GIF", "WEBP", "JPEG"})
# A baseline JPEG has one scan, or one per component (3), plus one in an EXIF thumbnail.
_IN_PROCESS_JPEG_SCANS = 4
_JPEG_START_OF_SCAN = b"\xff\xda"  # cannot occur inside entropy-coded data (0xFF is stuffed)

_PR_SET_PDEATHSIG = 1
_PR_SET_DUMPABLE = 4
_CHILD_SIGNALS = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGPROF,
    signal.SIGXCPU,
)
# How a child stopped for its CPU time ends (SIGKILL also when the wall-clock backstop fires).
_CPU_SIGNALS = frozenset({signal.SIGPROF, signal.SIGXCPU, signal.SIGKILL})
# The child's answer: one status byte, then for b"K" the size and the RGB pixels.
_OK, _UNREADABLE, _TOO_LARGE = b"K", b"U", b"L"
_SIZE = struct.Struct(">II")


@dataclass(frozen=True)
class _Limits:
    max_pixels: int
    max_full_decode_pixels: int


@dataclass(frozen=True)
class _Deferred:
    """What an in-process decode answers for an image it leaves to a child process: only the
    EXIF orientation, read from the header here (the child sends back pixels alone)."""

    orientation: int = 1


# The EXIF tag saying how stored pixels are turned for display (1 = as stored; 2-8 as in the spec).
_EXIF_ORIENTATION = 0x0112


def decode_image(
    data: bytes,
    *,
    max_bytes: int,
    max_pixels: int,
    max_full_decode_pixels: int = FULL_DECODE_MAX_PIXELS,
    cpu_seconds: float | None = DECODE_CPU_SECONDS,
) -> DecodedImage:
    """Decode ``data`` into a :class:`DecodedImage` or raise :class:`ImageDecodeError`.

    ``image_unreadable`` (400) for empty, truncated, corrupt or non-image data;
    ``image_too_large`` (413) for more than ``max_bytes`` bytes or more than ``max_pixels`` pixels
    (``max_full_decode_pixels`` for formats other than JPEG; Pillow's own decompression bomb limit
    also applies); ``image_too_complex`` (413) when decoding needs more than ``cpu_seconds`` of
    CPU; ``image_decoder_unavailable`` (503) when no decoder process can be started. The decoded
    image is reduced to at most WORK_PIXELS; ``data`` is kept as received. ``cpu_seconds=None``
    decodes everything in this process, unbounded (for tests and tools, never for uploads).

    Side effects: may fork a short-lived child process; nothing is written or logged.
    """
    if max_bytes < 1 or max_pixels < 1 or max_full_decode_pixels < 1:
        raise ValueError("max_bytes and max_pixels must be positive.")
    if cpu_seconds is not None and cpu_seconds <= 0:
        raise ValueError("cpu_seconds must be positive (or None).")
    data = bytes(data)
    if not data:
        raise ImageDecodeError("image_unreadable", "The uploaded file is empty.")
    if len(data) > max_bytes:
        raise ImageDecodeError(
            "image_too_large",
            f"The uploaded file is {len(data)} bytes; the limit is {max_bytes} bytes.",
            {"size": len(data), "max_bytes": max_bytes},
        )
    limits = _Limits(max_pixels, max_full_decode_pixels)
    outcome = _decode(data, limits, in_process_only=cpu_seconds is None)
    if isinstance(outcome, _Deferred):  # never when cpu_seconds is None
        orientation = outcome.orientation
        child = _decode_in_child(data, limits, cpu_seconds or DECODE_CPU_SECONDS)
        outcome = child if isinstance(child, ImageDecodeError) else (*child, orientation)
    if isinstance(outcome, ImageDecodeError):
        # Raised here, outside any except block, so Pillow's exception is not chained to it.
        raise outcome
    image, image_format, orientation = outcome
    return DecodedImage(data=data, image=image, format=image_format, orientation=orientation)


def reduction_factor(width: int, height: int) -> int:
    """The smallest whole factor that brings a width x height image within WORK_PIXELS."""
    factor = max(1, math.isqrt(width * height // WORK_PIXELS))
    while -(-width // factor) * -(-height // factor) > WORK_PIXELS:
        factor += 1
    return factor


@contextlib.contextmanager
def _decoding_warnings() -> Iterator[None]:
    # catch_warnings swaps the process-wide filter list; under threads a concurrent decode may see
    # the other's filters for a moment. That is harmless: the pixel check refuses what Pillow
    # only warns about, and the filters changed are the same in every decode.
    with warnings.catch_warnings():
        # Pillow's UserWarnings describe malformed files (bad EXIF, odd palettes); they are noise
        # in the logs for hostile input, so they are dropped rather than logged.
        warnings.simplefilter("ignore", UserWarning)
        # Pillow only *warns* between its limit and twice that; make it refuse instead.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        yield


def _decode(
    data: bytes, limits: _Limits, *, in_process_only: bool
) -> tuple[Image.Image, str | None, int] | ImageDecodeError | _Deferred:
    """Open, check the limits, then decode here, or answer _Deferred for a child to decode."""
    Image.init()
    formats = [name for name in ACCEPTED_FORMATS if name in Image.OPEN]
    with _decoding_warnings():
        try:
            with Image.open(io.BytesIO(data), formats=formats) as opened:
                refusal = _refusal(opened, limits)
                if refusal is not None:
                    return refusal
                orientation = _orientation(opened)
                if not in_process_only and not _is_small_and_simple(opened, data):
                    return _Deferred(orientation)
                return _pixels(opened), opened.format, orientation
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            return _bomb(limits)
        except Exception:
            # Decoders fail on hostile input in many ways (OSError, SyntaxError, ValueError,
            # struct.error, EOFError...); each one is an unreadable upload, never a 500.
            return _unreadable()


def _refusal(opened: Image.Image, limits: _Limits) -> ImageDecodeError | None:
    width, height = opened.size
    if width * height > limits.max_pixels:
        return _too_many_pixels(width, height, limits.max_pixels)
    if opened.format != "JPEG" and width * height > limits.max_full_decode_pixels:
        return _too_many_pixels(
            width,
            height,
            limits.max_full_decode_pixels,
            f" for {opened.format or 'this format'} (only JPEG can be decoded at a reduced scale)",
        )
    return None


def _orientation(opened: Image.Image) -> int:
    """The EXIF orientation (1-8) from what Pillow read with the header, else 1.

    Never ``opened.getexif()`` for formats other than TIFF: for a PNG whose EXIF chunk follows
    the pixels it decodes the whole image, here, outside the child's CPU limit.
    """
    try:
        if opened.format == "TIFF":
            value = opened.getexif().get(_EXIF_ORIENTATION, 1)
        else:
            raw = opened.info.get("exif")
            if not isinstance(raw, bytes | bytearray) or not raw:
                return 1
            exif = Image.Exif()
            exif.load(bytes(raw))
            value = exif.get(_EXIF_ORIENTATION, 1)
    except Exception:
        # A malformed EXIF block is hashed as stored, as before; never a failed upload.
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _is_small_and_simple(opened: Image.Image, data: bytes) -> bool:
    """Whether decoding here costs no more than the image's size says (so no child is needed)."""
    width, height = opened.size
    if opened.format not in _IN_PROCESS_FORMATS or width * height > WORK_PIXELS:
        return False
    return opened.format != "JPEG" or (
        not opened.info.get("progressive")
        and data.count(_JPEG_START_OF_SCAN) <= _IN_PROCESS_JPEG_SCANS
    )


def _pixels(opened: Image.Image) -> Image.Image:
    """The RGB pixels of the first frame, reduced to at most WORK_PIXELS."""
    factor = reduction_factor(*opened.size)
    if factor > 1 and opened.format == "JPEG":
        # DCT scaling by 1/2, 1/4 or 1/8, never below the reduced size; reduce() does the rest.
        width, height = opened.size
        opened.draft(None, (-(-width // factor), -(-height // factor)))
    opened.load()
    factor = reduction_factor(*opened.size)
    if factor == 1:
        return opened.convert("RGB")
    # Converted first, as an image that fits is: reduce() would weigh RGBA pixels by their alpha.
    rgb = opened if opened.mode == "RGB" else opened.convert("RGB")
    return rgb.reduce(factor)


# --- the child process ---------------------------------------------------------------------------


def _decode_in_child(
    data: bytes, limits: _Limits, cpu_seconds: float
) -> tuple[Image.Image, str | None] | ImageDecodeError:
    """Decode in a forked child stopped by the kernel after ``cpu_seconds`` of CPU time."""
    read_end, write_end = os.pipe()
    try:
        with warnings.catch_warnings():
            # Python 3.12+ warns about forking a threaded process: the child only decodes (C code
            # and Pillow's Python layer) and leaves with os._exit, never taking another's locks.
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
    except OSError:
        os.close(read_end)
        os.close(write_end)
        return ImageDecodeError(
            "image_decoder_unavailable",
            "The hub could not start a decoder for this image just now; try again shortly.",
        )
    if pid == 0:  # pragma: no cover - the child (its work is _decode's, tested in-process)
        os.close(read_end)
        _child_main(data, limits, cpu_seconds, write_end)
    os.close(write_end)
    answer, finished = _read_answer(read_end, time.monotonic() + DECODE_WALL_SECONDS)
    if not finished:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    if not finished or (os.WIFSIGNALED(status) and os.WTERMSIG(status) in _CPU_SIGNALS):
        return _too_complex(cpu_seconds)
    return _parse_answer(answer, limits)


def _read_answer(fd: int, deadline: float) -> tuple[bytes, bool]:
    """Everything the child writes until it closes the pipe, or (so far, False) at the deadline."""
    chunks: list[bytes] = []
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return b"".join(chunks), False
            if not poller.poll(remaining * 1000):
                continue
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                return b"".join(chunks), True
            chunks.append(chunk)
    finally:
        os.close(fd)


def _parse_answer(
    answer: bytes, limits: _Limits
) -> tuple[Image.Image, str | None] | ImageDecodeError:
    status, body = answer[:1], answer[1:]
    if status == _TOO_LARGE:
        return _bomb(limits)
    if status != _OK or len(body) < _SIZE.size + 1:
        # _UNREADABLE, or a child that died another way (a decoder crash): unreadable either way.
        return _unreadable()
    width, height = _SIZE.unpack_from(body)
    name_length = body[_SIZE.size]
    start = _SIZE.size + 1 + name_length
    pixels = body[start:]
    if len(pixels) != width * height * 3:
        return _unreadable()
    image_format = body[_SIZE.size + 1 : start].decode("ascii") or None
    return Image.frombytes("RGB", (width, height), pixels), image_format


def _child_main(
    data: bytes, limits: _Limits, cpu_seconds: float, fd: int
) -> NoReturn:  # pragma: no cover - runs in the child
    """Decode under the CPU limit, write the answer, leave without any clean-up (the parent's
    connections, sockets and files are shared with this process: touch none of them)."""
    status = 1
    try:
        _confine(cpu_seconds)
        outcome = _decode(data, limits, in_process_only=True)
        if isinstance(outcome, ImageDecodeError):
            answer = _TOO_LARGE if outcome.code == "image_too_large" else _UNREADABLE
            _write_all(fd, answer)
        elif isinstance(outcome, tuple):
            image, image_format, _ = outcome
            name = (image_format or "").encode("ascii")
            _write_all(fd, _OK + _SIZE.pack(*image.size) + bytes([len(name)]) + name)
            _write_all(fd, image.tobytes())
        status = 0
    except BaseException:  # noqa: S110 - nothing may escape the child; the parent sees no answer
        pass
    finally:
        os._exit(status)


def _confine(cpu_seconds: float) -> None:  # pragma: no cover - runs in the child
    """Die with the parent, never dump core (the image is in memory), stop after the CPU time."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        libc.prctl(_PR_SET_DUMPABLE, 0)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    faulthandler.disable()  # a crashing decoder is an unreadable image, not a traceback in the log
    for number in _CHILD_SIGNALS:  # not the worker's handlers; SIGPROF's default ends the child
        signal.signal(number, signal.SIG_DFL)
    # The profiling timer counts this process's CPU time (C code included) to the millisecond;
    # RLIMIT_CPU, in whole seconds, is the kernel's backstop (SIGKILL at the hard limit).
    signal.setitimer(signal.ITIMER_PROF, cpu_seconds)
    hard = math.ceil(cpu_seconds) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (hard, hard))


def _write_all(fd: int, data: bytes) -> None:  # pragma: no cover - runs in the child
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


# --- errors -------------------------------------------------------------------------------------


def _unreadable() -> ImageDecodeError:
    return ImageDecodeError(
        "image_unreadable",
        "The uploaded file is not an image this hub can read (JPEG, PNG, GIF, WebP, BMP, "
        "TIFF or AVIF), or it is truncated or corrupt.",
    )


def _bomb(limits: _Limits) -> ImageDecodeError:
    return ImageDecodeError(
        "image_too_large",
        "The image has too many pixels to decode safely.",
        {"max_pixels": limits.max_pixels},
    )


def _too_complex(cpu_seconds: float) -> ImageDecodeError:
    return ImageDecodeError(
        "image_too_complex",
        f"The image takes more than {cpu_seconds:g} s to decode, the most this hub spends on one; "
        "send it re-encoded (a baseline JPEG or an 8-bit PNG) or smaller.",
        {"cpu_seconds": cpu_seconds},
    )


def _too_many_pixels(width: int, height: int, max_pixels: int, which: str = "") -> ImageDecodeError:
    return ImageDecodeError(
        "image_too_large",
        f"The image is {width}x{height} pixels; the limit is {max_pixels} pixels{which}.",
        {"width": width, "height": height, "max_pixels": max_pixels},
    )
