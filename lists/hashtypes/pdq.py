"""PDQ: Meta's 256-bit perceptual hash, compared by Hamming distance, with a 0-100 quality.

Hashes are computed with the ``pdqhash`` package (bindings to the reference C++ code). Its
``compute`` returns a 256-element 0/1 vector; the hub packs it most significant bit first, so
vector[0] is the top bit of the first byte and ``to_text`` prints the same 64 hex characters as
python-threatexchange (``threatexchange/signal_type/pdq/pdq_hasher.py`` joins the vector into a
binary string, reads it as one integer and prints it as zero-padded lowercase hex) and as the
reference C++ ``Hash256::toHexString`` (pdqhash 0.2.x emits the vector in that word order).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pdqhash

from lists.hashtypes.base import ComputedHash, DecodedImage, PerceptualSignalType

# Below this quality the reference implementation's authors advise against trusting a match:
# flat or near-flat images all hash alike.
PDQ_MIN_QUALITY = 50


def pdq_vector_to_bytes(vector: Sequence[int] | np.ndarray) -> bytes:
    """Pack pdqhash's 256 bits into 32 bytes, most significant bit first, as threatexchange does."""
    bits = np.asarray(vector)
    if bits.shape != (256,) or not np.isin(bits, (0, 1)).all():
        raise ValueError("pdqhash returned something other than 256 bits.")
    return np.packbits(bits.astype(np.uint8), bitorder="big").tobytes()


class PDQ(PerceptualSignalType):
    """PDQ, 64 hex characters; matches within 31 bits by default, never further."""

    name = "pdq"
    label = "PDQ"
    bits = 256
    default_max_distance = 31
    max_distance = 31

    def compute(self, image: DecodedImage) -> ComputedHash:
        """Hash the RGB pixels and report PDQ's quality, flagging it when below PDQ_MIN_QUALITY."""
        vector, quality = pdqhash.compute(image.rgb_array)
        quality = int(quality)
        return self._computed(
            pdq_vector_to_bytes(vector), quality=quality, low_quality=quality < PDQ_MIN_QUALITY
        )
