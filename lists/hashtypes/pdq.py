"""PDQ: Meta's 256-bit perceptual hash, compared by Hamming distance, with a 0-100 quality.

Hashes are computed with the ``pdqhash`` package (bindings to the reference C++ code). Its
``compute`` returns a 256-element 0/1 vector; the hub packs it most significant bit first, so
vector[0] is the top bit of the first byte and ``to_text`` prints the same 64 hex characters as
python-threatexchange (``threatexchange/signal_type/pdq/pdq_hasher.py`` joins the vector into a
binary string, reads it as one integer and prints it as zero-padded lowercase hex) and as the
reference C++ ``Hash256::toHexString`` (pdqhash 0.2.x emits the vector in that word order).

Degenerate values are refused when added to a list, by every add path (API, the list pages, add
by image, file imports and every upstream source's importer, which reports the record as
rejected with its line or position), with the code ``degenerate_hash``; matching still looks them
up. :func:`pdq_degenerate_reason` refuses:

- a hash the hub computed from an image with a quality below ``PDQ_MIN_QUALITY`` (50);
- any value with fewer than ``PDQ_MIN_BITS_SET`` (64) or more than ``PDQ_MAX_BITS_SET`` (192) of
  its 256 bits set (real pictures give 128: all zeros, all ones and near-blank images fall out);
- any value within ``DEGENERATE_PDQ_RADIUS`` (31) bits of the PDQ of a flat black, white, grey,
  red, green or blue 64x64 image (``DEGENERATE_PDQ``, recomputed from Pillow images by
  tests/lists/test_degenerate_hashes.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pdqhash

from lists.hashtypes.base import ComputedHash, DecodedImage, PerceptualSignalType

# Below this quality the reference implementation's authors advise against trusting a match:
# flat or near-flat images all hash alike.
PDQ_MIN_QUALITY = 50

# --- degenerate values: refused when added to a list (matching still looks them up) ----------
#
# PDQ sets a bit for each DCT coefficient above their median, so the hash of any picture with
# detail has exactly 128 of its 256 bits set. Measured here with pdqhash 0.2: 300 random-noise
# images and 300 noisy or clean gradients with shapes all gave 128 (pure gradients as low as 108);
# flat single-colour images gave 0 (black) to 128, because their coefficients are rounding noise.
# A random 256-bit value is 128 +/- 8, so the band below is 8 standard deviations wide each side:
# no real hash and no test's secrets.token_hex(32) falls outside it, while all-zero, all-one and
# near-blank values do.
PDQ_MIN_BITS_SET = 64
PDQ_MAX_BITS_SET = 192

# The PDQ of flat images of a few colours (64x64; the hash of a flat image is rounding noise and
# differs by colour, so only the common ones are listed). The band above already refuses black and
# white; grey and the primaries have 68-88 bits set and need this list.
# tests/lists/test_degenerate_hashes.py recomputes every value from a Pillow image.
DEGENERATE_PDQ: dict[str, bytes] = {
    "black": bytes(32),
    "white": bytes.fromhex("00001134000011342c4b00002c4b1134000000002c4b2c4b00002c4b8200554b"),
    "grey": bytes.fromhex("000000002c4b11342c4b2c4b0000554b00002c4b113411342c4b585e2c4b017e"),
    "red": bytes.fromhex("2c4b017e82002c4b000000000000554b11342c4b0000a7a1cc53113482008200"),
    "green": bytes.fromhex("2c4bcc5300002c4b00002c4b0000000000001134554b585e113411348200bc64"),
    "blue": bytes.fromhex("000011342c4b554b2c4b000011342c4b2c4b1134cc532c4b000007d02c4bbd0b"),
}
# A value this near a listed one would match the same blank pictures (PDQ's match radius).
# Hashes of real pictures measured above were at least 91 bits from every flat-image hash.
DEGENERATE_PDQ_RADIUS = 31


def pdq_degenerate_reason(value: bytes, *, quality: int | None = None) -> str | None:
    """Why a PDQ value must not be added to a list (a sentence for the person adding it), or None.

    ``quality`` is given only where the hub computed the hash from an image itself.
    """
    if quality is not None and quality < PDQ_MIN_QUALITY:
        return (
            f"This PDQ hash has quality {quality}, below {PDQ_MIN_QUALITY}: the image is too "
            "plain for PDQ to tell it from other plain images, so it would match unrelated content."
        )
    bits_set = int.from_bytes(value, "big").bit_count()
    if not PDQ_MIN_BITS_SET <= bits_set <= PDQ_MAX_BITS_SET:
        return (
            f"This PDQ hash has {bits_set} of 256 bits set; real pictures give about 128: it is "
            "the hash of a near-blank image and would match unrelated content."
        )
    number = int.from_bytes(value, "big")
    for colour, known in DEGENERATE_PDQ.items():
        distance = (number ^ int.from_bytes(known, "big")).bit_count()
        if distance <= DEGENERATE_PDQ_RADIUS:
            return (
                f"This PDQ hash is {distance} bits from the hash of a flat {colour} image: it "
                "would match blank pictures and unrelated content."
            )
    return None


def pdq_vector_to_bytes(vector: Sequence[int] | np.ndarray) -> bytes:
    """Pack pdqhash's 256 bits into 32 bytes, most significant bit first, as threatexchange does."""
    bits = np.asarray(vector)
    if bits.shape != (256,) or not np.isin(bits, (0, 1)).all():
        raise ValueError("pdqhash returned something other than 256 bits.")
    return np.packbits(bits.astype(np.uint8), bitorder="big").tobytes()


DIHEDRAL_TRANSFORMS = (
    "original",
    "rotate90",
    "rotate180",
    "rotate270",
    "flip_horizontal",
    "flip_vertical",
    "transpose",
    "transverse",
)
"""The 8 ways a picture can be turned or mirrored, named as Pillow's ``Image.Transpose`` (rotations
are counter-clockwise: ``rotate90`` is ``ROTATE_90``; ``transpose`` mirrors across the top-left
to bottom-right diagonal, ``transverse`` across the other one)."""


def _turned_back(pixels: np.ndarray, name: str) -> np.ndarray:
    """The picture that the transform ``name`` turns into ``pixels`` (H x W x 3), i.e. the
    inverse transform applied to them, as a contiguous array."""
    inverse = {
        "original": lambda a: a,
        "rotate90": lambda a: np.rot90(a, -1),  # undo a counter-clockwise quarter turn
        "rotate180": lambda a: np.rot90(a, 2),
        "rotate270": lambda a: np.rot90(a, 1),
        "flip_horizontal": lambda a: a[:, ::-1],
        "flip_vertical": lambda a: a[::-1],
        "transpose": lambda a: a.transpose(1, 0, 2),
        "transverse": lambda a: np.rot90(a, 2).transpose(1, 0, 2),
    }[name]
    return np.ascontiguousarray(inverse(pixels))


def pdq_dihedral(image: DecodedImage) -> tuple[dict[str, bytes], int]:
    """The PDQ of the upload as it would be before each of the 8 transforms, keyed by
    :data:`DIHEDRAL_TRANSFORMS` name, and the upload's quality.

    A listed hash equal or near to ``hashes["rotate90"]`` was made from a picture that, rotated
    90 degrees counter-clockwise, is the upload.

    Each variant is the PDQ of the turned picture itself (8 passes), not pdqhash's
    ``compute_dihedral`` (one pass, turning the DCT): where a side is an even multiple of 64
    (256, 512 px, common sizes), PDQ's downscaling samples a pixel off centre, and those
    variants were 24-40 bits from the hashes of the turned pictures, beyond the match radius.
    Hashing the turned pictures gives exactly what a platform hashing the turned copy gives.
    """
    pixels = image.rgb_array
    hashes = {}
    quality = 0
    for name in DIHEDRAL_TRANSFORMS:
        vector, found = pdqhash.compute(_turned_back(pixels, name))
        hashes[name] = pdq_vector_to_bytes(vector)
        if name == "original":
            quality = int(found)
    return hashes, quality


class PDQ(PerceptualSignalType):
    """PDQ, 64 hex characters; matches within 31 bits by default, never further."""

    name = "pdq"
    label = "PDQ"
    bits = 256
    default_max_distance = 31
    max_distance = 31

    def degenerate_reason(self, value: bytes, *, quality: int | None = None) -> str | None:
        return pdq_degenerate_reason(value, quality=quality)

    def compute(self, image: DecodedImage) -> ComputedHash:
        """Hash the RGB pixels and report PDQ's quality, flagging it when below PDQ_MIN_QUALITY."""
        vector, quality = pdqhash.compute(image.rgb_array)
        quality = int(quality)
        return self._computed(
            pdq_vector_to_bytes(vector), quality=quality, low_quality=quality < PDQ_MIN_QUALITY
        )

    def compute_variants(self, image: DecodedImage) -> dict[str, ComputedHash]:
        """The 8 dihedral PDQ hashes, each from the turned picture (see :func:`pdq_dihedral`)."""
        hashes, quality = pdq_dihedral(image)
        return {
            name: self._computed(value, quality=quality, low_quality=quality < PDQ_MIN_QUALITY)
            for name, value in hashes.items()
        }
