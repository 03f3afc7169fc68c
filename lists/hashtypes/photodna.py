"""PhotoDNA: an opaque 144-byte value from licensed hashers, stored and matched exactly.

The hub cannot compute PhotoDNA (the algorithm is licensed), so ``compute`` returns None. Values
arrive as hex (288 characters, either case), base64 (192 characters, standard or URL-safe
alphabet, padding optional since 144 bytes never need any) or, as PhotoDNA's own tools and many
industry feeds write them, 144 comma-separated byte values ("12,0,255,…"); they are always shown
as lowercase hex.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import string

from lists.hashtypes.base import (
    HEX_DIGITS,
    ComputedHash,
    DecodedImage,
    HashParseError,
    SignalType,
    reject_bad_characters,
)

PHOTODNA_BYTES = 144
_HEX_LENGTH = PHOTODNA_BYTES * 2
_BASE64_LENGTH = PHOTODNA_BYTES * 4 // 3
_BASE64_CHARS = frozenset(string.ascii_letters + string.digits + "+/-_")


class PhotoDNA(SignalType):
    """PhotoDNA, opaque: exact matches only, never computed here."""

    name = "photodna"
    label = "PhotoDNA"
    kind = "opaque"
    bits = PHOTODNA_BYTES * 8

    def parse(self, text: str) -> bytes:
        """Accept hex, base64 or decimal bytes, telling which was expected when none fits."""
        cleaned = self._clean(text)
        if "," in cleaned:
            return _parse_decimal(cleaned)
        # Each form is decoded at C speed first (feeds bring millions of these); only a value
        # that fails is read character by character, to name what is wrong with it.
        if len(cleaned) == _HEX_LENGTH:
            with contextlib.suppress(ValueError):
                value = bytes.fromhex(cleaned)
                # fromhex skips inner spaces, so a right-length text may give too few bytes.
                if len(value) == PHOTODNA_BYTES:
                    return value
            reject_bad_characters(
                cleaned, HEX_DIGITS, what="hex digits (0-9, a-f)", label=self.label
            )
        # Tools that pad unconditionally would add "=" even though 144 bytes need none.
        unpadded = cleaned.rstrip("=")
        if len(cleaned) - len(unpadded) <= 2 and len(unpadded) == _BASE64_LENGTH:
            with contextlib.suppress(binascii.Error):
                return _decode_base64(unpadded)
            reject_bad_characters(
                unpadded, _BASE64_CHARS, what="base64 characters", label=self.label
            )
        reject_bad_characters(
            unpadded, HEX_DIGITS | _BASE64_CHARS, what="hex or base64 characters", label=self.label
        )
        raise HashParseError(
            "wrong_length",
            f"A PhotoDNA hash is {PHOTODNA_BYTES} bytes: {_HEX_LENGTH} hex or {_BASE64_LENGTH} "
            f"base64 characters; this one has {len(cleaned)}.",
            {"expected_length": [_HEX_LENGTH, _BASE64_LENGTH], "length": len(cleaned)},
        )

    def compute(self, image: DecodedImage) -> ComputedHash | None:
        """PhotoDNA cannot be computed here: its hashers are licensed software."""
        return None


def _parse_decimal(text: str) -> bytes:
    """144 comma-separated byte values, each 0 to 255 (spaces around them are ignored)."""
    parts = [part.strip() for part in text.split(",")]
    if len(parts) != PHOTODNA_BYTES:
        raise HashParseError(
            "wrong_length",
            f"A PhotoDNA hash in decimal is {PHOTODNA_BYTES} comma-separated byte values; "
            f"this one has {len(parts)}.",
            {"expected_length": PHOTODNA_BYTES, "length": len(parts)},
        )
    for position, part in enumerate(parts, start=1):
        # Length first: int() of 4,301 digits or more raises before any range check could.
        if len(part) > 3 or not part.isascii() or not part.isdigit() or int(part) > 255:
            raise HashParseError(
                "bad_characters",
                f"Value {position} of the PhotoDNA hash is {part[:12]!r}, not a byte (0 to 255).",
                {"position": position},
            )
    return bytes(int(part) for part in parts)


def _decode_base64(text: str) -> bytes:
    """192 characters of either alphabet (both decode to the same bytes) are exactly 144 bytes;
    ``validate=True`` raises binascii.Error on any other character."""
    return base64.b64decode(text.replace("-", "+").replace("_", "/"), validate=True)
