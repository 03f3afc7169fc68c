"""The signal types the client knows, as ``GET /api/v1/hashtypes`` describes them.

The hub's registry (``lists.hashtypes``) cannot be imported here: it raises the hub's
``ServiceError``, and importing ``hub`` starts its Celery app, which imports Django. So the few
facts the client needs are written down once more, and tests/client/test_hashing.py checks them
against the hub's registry (kind, bits, default and largest radius, PDQ's quality threshold).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

SignalKind = Literal["exact", "perceptual", "opaque"]


@dataclass(frozen=True)
class SignalType:
    name: str
    kind: SignalKind
    bits: int
    default_max_distance: int = 0
    max_distance: int = 0


SIGNAL_TYPES: dict[str, SignalType] = {
    signal_type.name: signal_type
    for signal_type in (
        SignalType("md5", "exact", 128),
        SignalType("sha1", "exact", 160),
        SignalType("sha256", "exact", 256),
        SignalType("pdq", "perceptual", 256, 31, 31),
        SignalType("phash", "perceptual", 64, 10, 10),
        SignalType("photodna", "opaque", 144 * 8),
    )
}
"""Every type the hub registers, in the hub's order (exact, perceptual, opaque)."""

PDQ_MIN_QUALITY = 50
"""Below this PDQ quality the hub does not match an image's PDQ hash (``low_quality``)."""
