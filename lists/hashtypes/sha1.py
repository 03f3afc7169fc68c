"""SHA-1: the 160-bit digest some industry feeds exchange."""

from __future__ import annotations

import hashlib

from lists.hashtypes.base import ExactSignalType


class SHA1(ExactSignalType):
    """SHA-1 over the uploaded bytes, 40 hex characters."""

    name = "sha1"
    label = "SHA-1"
    bits = 160

    def digest(self, data: bytes) -> bytes:
        # SHA-1 only names a known file here; it protects nothing, hence usedforsecurity=False.
        return hashlib.sha1(data, usedforsecurity=False).digest()
