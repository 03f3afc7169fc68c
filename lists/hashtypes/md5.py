"""MD5: the 128-bit digest most legacy hash lists still carry."""

from __future__ import annotations

import hashlib

from lists.hashtypes.base import ExactSignalType


class MD5(ExactSignalType):
    """MD5 over the uploaded bytes, 32 hex characters."""

    name = "md5"
    label = "MD5"
    bits = 128

    def digest(self, data: bytes) -> bytes:
        # MD5 only names a known file here; it protects nothing, hence usedforsecurity=False.
        return hashlib.md5(data, usedforsecurity=False).digest()
