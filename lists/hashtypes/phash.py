"""pHash: the 64-bit DCT perceptual hash from the ``imagehash`` package, by Hamming distance."""

from __future__ import annotations

import imagehash

from lists.hashtypes.base import ComputedHash, DecodedImage, PerceptualSignalType


class PHash(PerceptualSignalType):
    """pHash, 16 hex characters; matches within 10 bits by default, never further."""

    name = "phash"
    label = "pHash"
    bits = 64
    default_max_distance = 10
    max_distance = 10

    def compute(self, image: DecodedImage) -> ComputedHash:
        """Hash the RGB image; the text is exactly ``str(imagehash.phash(image))``.

        Going through imagehash's own string keeps the bit order identical to what every other
        imagehash user shares, rather than re-deriving it from the boolean matrix.
        """
        return self._computed(bytes.fromhex(str(imagehash.phash(image.image))))
