"""The signal-type contract: what every hash algorithm the hub knows has to provide.

A *signal type* turns user text into canonical bytes (``parse``), bytes back into canonical text
(``to_text``), measures how far apart two values are (``distance``) and, where the hub can, computes
a value from an uploaded image (``compute``). Everything else in the hub (lists, imports, matching,
the API) goes through this contract, so nothing outside the registry ever branches on a type name.

This module also holds the errors the registry raises and :class:`DecodedImage`, the one in-memory
decoding of an upload that every type hashes from.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt
from PIL import Image

from hub.errors import ServiceError

SignalKind = Literal["exact", "perceptual", "opaque"]

HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


class HashParseError(ServiceError):
    """A submitted hash value or type name the hub cannot understand.

    ``code`` is one of ``not_a_string``, ``empty_value``, ``bad_characters``, ``wrong_length``
    or ``unknown_type``; ``message`` is a sentence a person can act on. It is a
    :class:`~hub.errors.ServiceError`, so views answer it with a 400 and never a 500.
    """

    def __init__(self, code: str, message: str, details: Any = None) -> None:
        super().__init__(code, message, details, status=400)


class UnknownSignalTypeError(HashParseError):
    """A type name no registered signal type answers to (code ``unknown_type``)."""

    def __init__(self, name: object, known: Iterable[str]) -> None:
        known = list(known)
        # Echo the name so a typo is easy to spot, but never a whole pasted document.
        shown = repr(name) if len(repr(name)) <= 40 else repr(name)[:37] + "..."
        super().__init__(
            "unknown_type",
            f"Unknown hash type {shown}; this hub knows {', '.join(known)}.",
            {"known_types": known},
        )


class DegenerateHashError(ServiceError):
    """A well-formed value the hub refuses to add to a list (code ``degenerate_hash``), such as
    the hash of a blank image, which would match unrelated content for every subscriber."""

    def __init__(self, message: str) -> None:
        super().__init__("degenerate_hash", message, status=400)


class ImageDecodeError(ServiceError):
    """An upload that cannot be hashed as an image.

    ``code`` is ``image_unreadable`` (empty, truncated, corrupt or not an image; HTTP 400),
    ``image_too_large`` (over the byte or pixel cap, decompression bombs included; HTTP 413),
    ``image_too_complex`` (more decoding work than the hub spends on one image; HTTP 413) or
    ``image_decoder_unavailable`` (no decoder process could be started; HTTP 503).
    The message and details never contain any of the uploaded bytes.
    """

    STATUSES: ClassVar[dict[str, int]] = {
        "image_too_large": 413,
        "image_too_complex": 413,
        "image_decoder_unavailable": 503,
    }

    def __init__(self, code: str, message: str, details: Any = None) -> None:
        super().__init__(code, message, details, status=self.STATUSES.get(code, 400))


# The transpose that displays stored pixels, per EXIF orientation (PIL.ImageOps.exif_transpose's).
_EXIF_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


@dataclass(frozen=True, eq=False, repr=False)
class DecodedImage:
    """One upload, decoded once in memory and shared by every signal type.

    ``data`` is the upload exactly as received (cryptographic hashes are taken over it), ``image``
    its first frame converted to RGB and, when larger than the perceptual hashes need, reduced
    (perceptual hashes are taken over that; see decoding.WORK_PIXELS) and ``format`` what Pillow
    recognised it as; ``orientation`` the EXIF orientation (1, "as stored", when there is none).
    Nothing here ever touches the disk. The repr names only the size so
    that the bytes cannot leak into a log line or an error report's local variables.
    """

    data: bytes
    image: Image.Image
    format: str | None = None
    orientation: int = 1

    def __repr__(self) -> str:
        return (
            f"<DecodedImage {self.format or 'image'} {self.width}x{self.height}, "
            f"{len(self.data)} bytes>"
        )

    @property
    def width(self) -> int:
        return self.image.width

    @property
    def height(self) -> int:
        return self.image.height

    def as_displayed(self) -> DecodedImage | None:
        """The upload as a viewer shows it (its EXIF orientation applied to the pixels, as
        ``PIL.ImageOps.exif_transpose`` does), or None when it carries no orientation."""
        method = _EXIF_TRANSPOSE.get(self.orientation)
        if method is None:
            return None
        return DecodedImage(data=self.data, image=self.image.transpose(method), format=self.format)

    @cached_property
    def rgb_array(self) -> npt.NDArray[np.uint8]:
        """The RGB pixels as a height x width x 3 uint8 array, built on first use (PDQ wants it)."""
        return np.asarray(self.image, dtype=np.uint8)


@dataclass(frozen=True)
class ComputedHash:
    """A hash the hub computed from an image.

    ``quality`` is the algorithm's own confidence (0-100) where it has one (PDQ); ``low_quality``
    is set when that quality is below the algorithm's threshold, so callers can tell users the
    image is too plain to match reliably instead of silently matching noise.
    """

    signal_type: str
    value: bytes
    text: str
    quality: int | None = None
    low_quality: bool = False


class SignalType(ABC):
    """One hash algorithm: its canonical text form, its distance and how to compute it.

    Subclasses set the class attributes and implement the abstract methods; the registry holds one
    instance of each. ``max_distance`` is the most a match request may ask for and
    ``default_max_distance`` what it gets when it asks for nothing; both are 0 for exact and
    opaque types, which only ever match byte for byte.
    """

    name: ClassVar[str]
    label: ClassVar[str]
    kind: ClassVar[SignalKind]
    bits: ClassVar[int]
    default_max_distance: ClassVar[int] = 0
    max_distance: ClassVar[int] = 0

    @property
    def byte_length(self) -> int:
        return self.bits // 8

    @abstractmethod
    def parse(self, text: str) -> bytes:
        """Turn submitted text into canonical bytes or raise :class:`HashParseError`."""

    def to_text(self, value: bytes) -> str:
        """The canonical text of a value: lowercase hex, the form the hub stores and shows."""
        self._check_length(value)
        return value.hex()

    def distance(self, a: bytes, b: bytes) -> int:
        """How far apart two values are, in bits.

        The default is the discrete distance exact and opaque types need: 0 when the values are
        equal, otherwise ``bits`` (as far apart as the type can express). With ``max_distance`` 0
        no unequal pair can ever match, yet the result still obeys the metric axioms and stays
        within ``bits``, so code may treat every type alike. Perceptual types override this.
        """
        self._check_length(a)
        self._check_length(b)
        return 0 if a == b else self.bits

    @abstractmethod
    def compute(self, image: DecodedImage) -> ComputedHash | None:
        """Hash a decoded upload, or return None when this hub cannot compute the type."""

    def compute_variants(self, image: DecodedImage) -> dict[str, ComputedHash] | None:
        """The hash of the image as it would be before each rotation and mirror, keyed by
        transform name ("original" first), or None when the type has no such variants."""
        return None

    def describe(self) -> dict[str, Any]:
        """The type as ``GET /api/v1/hashtypes`` lists it."""
        return {
            "type": self.name,
            "kind": self.kind,
            "bits": self.bits,
            "default_max_distance": self.default_max_distance,
            "max_distance": self.max_distance,
        }

    def degenerate_reason(self, value: bytes, *, quality: int | None = None) -> str | None:
        """Why this value must not be added to a list (it would match unrelated content: the
        hash of a blank image, say), or None. ``quality`` is passed only for a hash the hub
        computed itself. Only adding is refused; matching still looks such values up."""
        return None

    def check_addable(self, value: bytes, *, quality: int | None = None) -> None:
        """Raise :class:`DegenerateHashError` (code ``degenerate_hash``) for a degenerate value."""
        reason = self.degenerate_reason(value, quality=quality)
        if reason is not None:
            raise DegenerateHashError(reason)

    def _computed(self, value: bytes, **extra: Any) -> ComputedHash:
        return ComputedHash(self.name, value, self.to_text(value), **extra)

    def _check_length(self, value: bytes) -> None:
        # Stored values are canonical by construction, so a wrong length here is a bug in the
        # caller, not bad user input: fail loudly instead of returning a meaningless answer.
        if len(value) != self.byte_length:
            raise ValueError(f"{self.label} values are {self.byte_length} bytes, not {len(value)}.")

    def _clean(self, text: str) -> str:
        """Trim the submitted text and refuse what is not a non-empty string."""
        if not isinstance(text, str):
            raise HashParseError(
                "not_a_string",
                f"{self.label} hashes must be given as text, not {type(text).__name__}.",
            )
        cleaned = text.strip()
        if not cleaned:
            raise HashParseError("empty_value", f"The {self.label} hash is empty.")
        return cleaned

    def __repr__(self) -> str:
        return f"<SignalType {self.name}>"


def reject_bad_characters(text: str, allowed: frozenset[str], *, what: str, label: str) -> None:
    """Raise ``bad_characters`` naming the first character of ``text`` not in ``allowed``.

    Naming the character and its (1-based) position lets a person spot a stray prefix, a
    separator or a pasted quote at once.
    """
    for index, char in enumerate(text):
        if char not in allowed:
            raise HashParseError(
                "bad_characters",
                f"{label} hashes may contain only {what}; found {char!r} at position {index + 1}.",
                {"position": index + 1},
            )


class HexSignalType(SignalType):
    """A type whose values are fixed-length and written as hex, in either case."""

    def parse(self, text: str) -> bytes:
        cleaned = self._clean(text)
        expected = self.byte_length * 2
        if len(cleaned) == expected:
            # The common case, checked at C speed: bulk imports parse millions of these.
            try:
                value = bytes.fromhex(cleaned)
            except ValueError:
                value = b""  # Fall through to name the offending character.
            # fromhex skips inner spaces, so a right-length text may still give too few bytes.
            if len(value) == self.byte_length:
                return value
        # Characters before length: a stray "0x" or "md5:" prefix is the likelier mistake, and
        # naming it helps more than a character count does.
        reject_bad_characters(cleaned, HEX_DIGITS, what="hex digits (0-9, a-f)", label=self.label)
        if len(cleaned) != expected:
            raise HashParseError(
                "wrong_length",
                f"{self.label} hashes are {expected} hex characters long; "
                f"this one has {len(cleaned)}.",
                {"expected_length": expected, "length": len(cleaned)},
            )
        return bytes.fromhex(cleaned)


class ExactSignalType(HexSignalType):
    """A cryptographic digest of the uploaded bytes, matched only when equal."""

    kind: ClassVar[SignalKind] = "exact"

    @abstractmethod
    def digest(self, data: bytes) -> bytes:
        """The digest of raw bytes."""

    def compute(self, image: DecodedImage) -> ComputedHash:
        """Digest the upload exactly as received, so it equals the file's own checksum."""
        return self._computed(self.digest(image.data))


class PerceptualSignalType(HexSignalType):
    """A perceptual hash: similar images give values a small Hamming distance apart."""

    kind: ClassVar[SignalKind] = "perceptual"

    def distance(self, a: bytes, b: bytes) -> int:
        """The Hamming distance: the number of bits in which the two values differ."""
        self._check_length(a)
        self._check_length(b)
        return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).bit_count()
