"""The registry: the one place that knows which signal types exist.

Adding a type is one new module with a :class:`~lists.hashtypes.base.SignalType` subclass and one
line in ``_BUILT_IN`` below. Everything else looks types up by name here and then calls methods
on them, so no other code needs to branch on a type name.
"""

from __future__ import annotations

import re

from lists.hashtypes.base import ComputedHash, DecodedImage, SignalType, UnknownSignalTypeError
from lists.hashtypes.md5 import MD5
from lists.hashtypes.pdq import PDQ
from lists.hashtypes.phash import PHash
from lists.hashtypes.photodna import PhotoDNA
from lists.hashtypes.sha1 import SHA1
from lists.hashtypes.sha256 import SHA256

_NAME = re.compile(r"[a-z][a-z0-9_]*")


class SignalTypeRegistry:
    """Signal types by name, kept in registration order so listings and exports are stable."""

    def __init__(self) -> None:
        self._types: dict[str, SignalType] = {}

    def register(self, signal_type: SignalType) -> SignalType:
        """Add a type, checking the promises the rest of the hub relies on.

        Raises ValueError for a duplicate or malformed name or inconsistent distances: those are
        programming mistakes that should stop the process at import, not surface per request.
        """
        name = signal_type.name
        if not _NAME.fullmatch(name):
            raise ValueError(f"Signal type name {name!r} must be lowercase letters, digits or _.")
        if name in self._types:
            raise ValueError(f"Signal type {name!r} is already registered.")
        if signal_type.bits <= 0 or signal_type.bits % 8:
            raise ValueError(f"Signal type {name!r} must have a whole number of bytes.")
        if not 0 <= signal_type.default_max_distance <= signal_type.max_distance:
            raise ValueError(f"Signal type {name!r} needs 0 <= default_max_distance <= max.")
        if signal_type.max_distance > signal_type.bits:
            raise ValueError(f"Signal type {name!r} cannot match further than its bit count.")
        if signal_type.kind != "perceptual" and signal_type.max_distance != 0:
            raise ValueError(f"Signal type {name!r} is {signal_type.kind}: it matches exactly.")
        self._types[name] = signal_type
        return signal_type

    def get(self, name: str) -> SignalType:
        """The type called ``name`` (trimmed, any case) or UnknownSignalTypeError (a 400)."""
        key = name.strip().lower() if isinstance(name, str) else None
        if key is None or key not in self._types:
            raise UnknownSignalTypeError(name, self._types)
        return self._types[key]

    def all_types(self) -> tuple[SignalType, ...]:
        """Every type, in registration order."""
        return tuple(self._types.values())

    def compute_all(self, image: DecodedImage) -> dict[str, ComputedHash]:
        """Every hash this hub can compute for one decoded upload, keyed by type name."""
        computed: dict[str, ComputedHash] = {}
        for signal_type in self._types.values():
            result = signal_type.compute(image)
            if result is not None:
                computed[signal_type.name] = result
        return computed


# Exact types first, then perceptual, then opaque: the order listings and the API show.
_BUILT_IN: tuple[SignalType, ...] = (MD5(), SHA1(), SHA256(), PDQ(), PHash(), PhotoDNA())

default_registry = SignalTypeRegistry()
for _signal_type in _BUILT_IN:
    default_registry.register(_signal_type)


def register(signal_type: SignalType) -> SignalType:
    """Add a signal type to the hub's registry (see :meth:`SignalTypeRegistry.register`)."""
    return default_registry.register(signal_type)


def get_signal_type(name: str) -> SignalType:
    """The signal type called ``name``; raises UnknownSignalTypeError (code ``unknown_type``)."""
    return default_registry.get(name)


def all_signal_types() -> tuple[SignalType, ...]:
    """Every registered signal type, in a stable order: md5, sha1, sha256, pdq, phash, photodna."""
    return default_registry.all_types()


def compute_all(image: DecodedImage) -> dict[str, ComputedHash]:
    """Every hash the hub can compute for ``image``; types that cannot (PhotoDNA) are left out."""
    return default_registry.compute_all(image)
