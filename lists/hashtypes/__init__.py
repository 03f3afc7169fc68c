"""Signal types: parse, canonicalise, compare and compute every hash the hub knows.

A pure-Python package (no models, no ORM). Look a type up with :func:`get_signal_type`, list them
with :func:`all_signal_types`, decode an upload once with :func:`decode_image` and hash it with
:func:`compute_all`.
"""

from __future__ import annotations

from lists.hashtypes.base import (
    ComputedHash,
    DecodedImage,
    DegenerateHashError,
    ExactSignalType,
    HashParseError,
    HexSignalType,
    ImageDecodeError,
    PerceptualSignalType,
    SignalKind,
    SignalType,
    UnknownSignalTypeError,
)
from lists.hashtypes.decoding import ACCEPTED_FORMATS, decode_image
from lists.hashtypes.pdq import PDQ_MIN_QUALITY
from lists.hashtypes.registry import (
    SignalTypeRegistry,
    all_signal_types,
    compute_all,
    get_signal_type,
    register,
)

__all__ = [
    "ACCEPTED_FORMATS",
    "PDQ_MIN_QUALITY",
    "ComputedHash",
    "DecodedImage",
    "DegenerateHashError",
    "ExactSignalType",
    "HashParseError",
    "HexSignalType",
    "ImageDecodeError",
    "PerceptualSignalType",
    "SignalKind",
    "SignalType",
    "SignalTypeRegistry",
    "UnknownSignalTypeError",
    "all_signal_types",
    "compute_all",
    "decode_image",
    "get_signal_type",
    "register",
]
