"""SHA-256: the 256-bit digest newer lists and platforms prefer."""

from __future__ import annotations

import hashlib

from lists.hashtypes.base import ExactSignalType


class SHA256(ExactSignalType):
    """SHA-256 over the uploaded bytes, 64 hex characters."""

    name = "sha256"
    label = "SHA-256"
    bits = 256

    def digest(self, data: bytes) -> bytes:
        return hashlib.sha256(data).digest()
