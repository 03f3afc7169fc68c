"""The ``hashhub`` command: a client for platforms that hash, match, add and export.

It imports no Django (it runs where the hub's settings are not configured, on a platform's own
machines): only httpx, Pillow, numpy, pdqhash and imagehash, and the hub's Django-free match
index (:mod:`matching.index`) for ``hashhub match --offline``. Images are hashed in memory on the
platform and only their hashes are sent, so no image ever leaves it.
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
