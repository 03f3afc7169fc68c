"""Image hashing cost (issue 18): what one image costs POST /api/v1/match/image, worst cases first.

Every image here is synthetic and made by this script: a small photo-like baseline, the largest
image the hub accepts in each format (JPEG at HASHHUB_MAX_IMAGE_PIXELS, the formats decoded whole
at FULL_DECODE_MAX_PIXELS, all under HASHHUB_MAX_UPLOAD_BYTES), decompression-bomb-style PNGs
(a few hundred kB) just under and just over the pixel cap, and JPEGs whose decoding is costly
whatever their size (many progressive scans, noise). Each is decoded and hashed in-process exactly
as matching.services.match_image does (decode_image with the settings' limits, then compute_all;
no server, no database), N times, and the script prints per image: the outcome, N, median and p99
wall time, median CPU time (this process and its decoder child processes together), peak memory
above the idle process, and the ratios to the baseline image. Run by `make bench`, or alone:

    .venv/bin/python -m hub.embedded test -- .venv/bin/python bench/match_image.py

Prints, never asserts. The goal is that the worst image the hub hashes costs at most a second of
a core here; what costs more is refused (413 image_too_large from the header, or
image_too_complex when the decoder is stopped). Wall time runs above CPU time when other work
shares the machine's cores; CPU time is the figure a worker actually pays.
"""

from __future__ import annotations

import io
import json
import os
import re
import resource
import statistics
import struct
import sys
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hub.settings")

import django

django.setup()

from django.conf import settings

from lists.hashtypes import ImageDecodeError, compute_all, decode_image, decoding

MAX_BYTES = settings.HASHHUB_MAX_UPLOAD_BYTES
MAX_PIXELS = settings.HASHHUB_MAX_IMAGE_PIXELS
FULL = decoding.FULL_DECODE_MAX_PIXELS
QUICK = os.environ.get("BENCH_QUICK") == "1"  # fewer repetitions of the large images


# --- synthetic images --------------------------------------------------------------------------


def encode(image: Image.Image, image_format: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format, **options)
    return buffer.getvalue()


def picture(width: int, height: int, smoothness: int, seed: int = 1) -> Image.Image:
    """Photo-like: random colours ``smoothness`` pixels apart, blended, with shapes on top."""
    rng = np.random.default_rng(seed)
    tile = rng.integers(0, 256, (height // smoothness + 2, width // smoothness + 2, 3), np.uint8)
    image = Image.fromarray(tile, "RGB").resize((width, height), Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x0, x1 = sorted(int(v) for v in rng.integers(0, width, 2))
        y0, y1 = sorted(int(v) for v in rng.integers(0, height, 2))
        draw.ellipse((x0, y0, x1 + 1, y1 + 1), fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    return image


def noise(width: int, height: int) -> Image.Image:
    rng = np.random.default_rng(2)
    pixels = rng.integers(0, 256, (height // 2, width // 2, 3), np.uint8)
    return Image.fromarray(pixels, "RGB").resize((width, height), Image.Resampling.NEAREST)


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def bomb_png(width: int, height: int, *, bit_depth: int = 16, colour_type: int = 6) -> bytes:
    """A PNG of all-zero pixels, every row Paeth-filtered (the costliest filter to undo): a few
    hundred kB however many pixels. 16-bit RGBA is the most bytes per pixel PNG has (8)."""
    channels = {0: 1, 2: 3, 6: 4}[colour_type]
    row = bytes([4]) + bytes((width * channels * bit_depth + 7) // 8)
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"".join(
        [
            b"\x89PNG\r\n\x1a\n",
            _chunk(b"IHDR", header),
            _chunk(b"IDAT", idat),
            _chunk(b"IEND", b""),
        ]
    )


def rle8_bmp(width: int, height: int) -> bytes:
    """An RLE8-compressed bitmap (Pillow decodes RLE in Python): runs of 255 pixels."""
    row = bytearray()
    for start in range(0, width, 255):
        row += bytes([min(255, width - start), (start // 255) % 256])
    pixels = (bytes(row) + b"\x00\x00") * height + b"\x00\x01"
    palette = b"".join(bytes([i, 255 - i, i // 2, 0]) for i in range(256))
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 8, 1, len(pixels), 2835, 2835, 256, 0)
    offset = 14 + len(info) + len(palette)
    head = b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset)
    return head + info + palette + pixels


def jpeg_with_many_scans(size: tuple[int, int], copies: int) -> bytes:
    """A progressive JPEG of one colour whose first AC scan is repeated: libjpeg walks every block
    once per scan, so the cost is pixels x scans while each empty scan is a few dozen bytes."""
    data = encode(Image.new("RGB", size, (90, 120, 150)), "JPEG", progressive=True, quality=90)
    marker = re.compile(rb"\xff[^\x00\xd0-\xd7]")
    for found in re.finditer(rb"\xff\xda", data):
        start = found.start()
        header_end = start + 2 + int.from_bytes(data[start + 2 : start + 4], "big")
        components = data[start + 4]
        if data[start + 5 + 2 * components] > 0 and data[start + 7 + 2 * components] >> 4 == 0:
            end = marker.search(data, header_end)
            if end is not None:
                return data[:-2] + data[start : end.start()] * copies + data[-2:]
    raise RuntimeError("the encoder wrote no AC first scan")


def side(pixels: int, aspect: float = 1.0) -> tuple[int, int]:
    """The largest width x height of the given aspect with at most ``pixels`` pixels."""
    height = int((pixels / aspect) ** 0.5)
    width = int(height * aspect)
    while (width + 1) * height <= pixels:
        width += 1
    return width, height


@dataclass
class Case:
    label: str
    make: Callable[[], bytes]
    runs: int


def cases() -> list[Case]:
    jpeg_cap = side(MAX_PIXELS)
    full_cap = side(FULL, 4 / 3)
    few = 3 if QUICK else 7
    return [
        Case("baseline: 640x480 JPEG photo, q85", lambda: photo_jpeg(640, 480), 40),
        Case(
            "640x480 PNG photo",
            lambda: encode(picture(640, 480, 8), "PNG"),
            40,
        ),
        Case("12 MP JPEG photo (4000x3000, q90)", lambda: photo_jpeg(4000, 3000), few),
        Case(
            f"JPEG at the pixel cap ({jpeg_cap[0]}x{jpeg_cap[1]}, q90)",
            lambda: photo_jpeg(*jpeg_cap),
            few,
        ),
        Case(
            "  the same, progressive",
            lambda: encode(picture(*jpeg_cap, 48), "JPEG", quality=90, progressive=True),
            few,
        ),
        Case(
            "  noise at the cap, baseline, as fine as fits the byte cap",
            lambda: under_byte_cap(
                lambda quality: encode(noise(*jpeg_cap), "JPEG", quality=quality),
                (75, 60, 45, 30, 20, 10),
            ),
            few,
        ),
        Case(
            "  noise 5000x4000, q90 progressive",
            lambda: encode(noise(5000, 4000), "JPEG", quality=90, progressive=True),
            few,
        ),
        Case(
            "1 MP progressive JPEG, 20,000 scans",
            lambda: jpeg_with_many_scans((1000, 1000), 20_000),
            few,
        ),
        Case(
            f"PNG photo at the full-decode cap ({full_cap[0]}x{full_cap[1]}, 8-bit RGB)",
            lambda: under_byte_cap(
                lambda smooth: encode(picture(*full_cap, smooth), "PNG", compress_level=6),
                (12, 16, 24, 32, 64, 128),
            ),
            few,
        ),
        Case(
            "  bomb-style PNG just under it (16-bit RGBA, Paeth)",
            lambda: bomb_png(*full_cap),
            few,
        ),
        Case(
            "  bomb-style PNG just over it (one pixel more)",
            lambda: bomb_png(full_cap[0] + 1, full_cap[1]),
            20,
        ),
        Case(
            "  49 MP one-colour PNG (the issue's 160 kB image)",
            lambda: bomb_png(7000, 7000, bit_depth=8, colour_type=2),
            20,
        ),
        Case(
            "lossless WebP at the full-decode cap",
            lambda: encode(picture(*full_cap, 64), "WEBP", lossless=True, method=0),
            few,
        ),
        Case(
            "GIF at the full-decode cap",
            lambda: encode(picture(*full_cap, 32).convert("P"), "GIF"),
            few,
        ),
        Case(
            "TIFF (LZW) at the full-decode cap",
            lambda: under_byte_cap(
                lambda colours: encode(
                    posterised(*full_cap, colours), "TIFF", compression="tiff_lzw"
                ),
                (16, 8, 4, 2),
            ),
            few,
        ),
        Case("RLE8 BMP at the full-decode cap", lambda: rle8_bmp(*full_cap), few),
        Case(
            "AVIF at the full-decode cap",
            lambda: encode(picture(*full_cap, 32), "AVIF", quality=80, speed=10),
            few,
        ),
    ]


def photo_jpeg(width: int, height: int) -> bytes:
    return encode(picture(width, height, max(4, width // 160)), "JPEG", quality=90)


def posterised(width: int, height: int, colours: int) -> Image.Image:
    """A photo-like picture in a few flat colours: long runs, which LZW compresses."""
    return picture(width, height, 64).quantize(colours).convert("RGB")


def under_byte_cap(make: Callable[[int], bytes], settings_to_try: tuple[int, ...]) -> bytes:
    """The first of ``make(setting)`` (most detailed first) that fits the byte cap."""
    for setting in settings_to_try:
        data = make(setting)
        if len(data) <= MAX_BYTES:
            break
    return data


# --- measuring ------------------------------------------------------------------------------------


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def measure(data: bytes, runs: int) -> tuple[str, dict[str, float]] | None:
    """Decode and hash ``data`` ``runs`` times, in a forked process so that its peak memory is
    this image's alone; returns the outcome of the last run and the figures."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the measuring process
        os.close(read_end)
        answer: list[object] = []
        try:
            idle = _rss_kib("VmRSS")
            walls: list[float] = []
            cpus: list[float] = []
            outcome = ""
            for _ in range(runs):
                started, cpu = time.perf_counter(), time.process_time() + _children_cpu()
                try:
                    decoded = decode_image(data, max_bytes=MAX_BYTES, max_pixels=MAX_PIXELS)
                    compute_all(decoded)
                    outcome = f"hashed at {decoded.width}x{decoded.height}"
                except ImageDecodeError as error:
                    outcome = f"{error.status} {error.code}"
                walls.append(time.perf_counter() - started)
                cpus.append(time.process_time() + _children_cpu() - cpu)
            children_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            walls.sort()
            figures = {
                "median": statistics.median(walls),
                "p99": walls[max(0, int(len(walls) * 0.99) - 1)],
                "cpu": statistics.median(cpus),
                "peak_mib": max(0, max(_rss_kib("VmHWM"), children_peak) - idle) / 1024,
            }
            answer = [outcome, figures]
        finally:
            os.write(write_end, json.dumps(answer).encode())
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as stream:
        received = json.loads(stream.read() or b"[]")
    os.waitpid(pid, 0)
    return (str(received[0]), dict(received[1])) if received else None


def main() -> None:
    print(
        f"image hashing, in-process as POST /api/v1/match/image does: byte cap "
        f"{MAX_BYTES / 2**20:g} MB, pixel cap {MAX_PIXELS:,} (JPEG) / {FULL:,} (decoded whole), "
        f"hashed at most {decoding.WORK_PIXELS:,} px, decoder CPU limit "
        f"{decoding.DECODE_CPU_SECONDS:g} s; {os.cpu_count()} cores"
    )
    print(
        f"{'image':<58} {'bytes':>10} {'N':>3} {'median':>8} {'p99':>8} {'CPU':>7} "
        f"{'peak MiB':>8} {'x base':>7} {'x mem':>6}  outcome"
    )
    # Imported on first use (scipy for pHash, the codecs): loaded before any peak is measured.
    compute_all(decode_image(photo_jpeg(64, 48), max_bytes=MAX_BYTES, max_pixels=MAX_PIXELS))
    base: dict[str, float] = {}
    for case in cases():
        data = case.make()
        measured = measure(data, case.runs)
        if measured is None:
            print(f"{case.label:<58} failed to measure")
            continue
        outcome, figures = measured
        median, p99, cpu, peak = (figures[k] for k in ("median", "p99", "cpu", "peak_mib"))
        if not base:
            base = {"median": median, "peak": max(peak, 1.0)}
        print(
            f"{case.label:<58} {len(data):>10,} {case.runs:>3} {median * 1000:>6.0f}ms "
            f"{p99 * 1000:>6.0f}ms {cpu:>6.2f}s {peak:>8.0f} {median / base['median']:>6.0f}x "
            f"{max(peak, 1.0) / base['peak']:>5.0f}x  {outcome}",
            flush=True,
        )


if __name__ == "__main__":
    main()
