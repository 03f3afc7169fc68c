"""Holder classes weigh each class by the keys a caller may match, extended as classes arrive."""

from __future__ import annotations

import numpy as np

from matching.engine import HolderClasses


def fresh_weights(classes: list[tuple[int, ...]], allowed: list[int]) -> list[int]:
    return [len(set(keys) & set(allowed)) for keys in classes]


def test_weights_count_the_allowed_keys_of_each_class() -> None:
    holders = HolderClasses()
    assert holders.intern([4, 2]) == holders.intern([2, 4, 4]) == 1
    assert holders.intern([7]) == 2

    assert holders.weights([2, 7]).tolist() == [0, 1, 1]
    assert holders.weights([9]).tolist() == [0, 0, 0]


def test_cached_weights_are_extended_by_the_classes_added_since() -> None:
    rng = np.random.default_rng(3)
    holders = HolderClasses()
    made: list[tuple[int, ...]] = [()]
    allowed = [2, 5, 11]
    for round_number in range(5):
        for _ in range(40):
            keys = tuple(sorted({int(k) for k in rng.integers(0, 16, rng.integers(1, 4))}))
            if holders.intern(keys) == len(made):
                made.append(keys)
        weights = holders.weights(allowed)
        assert len(weights) == len(made), round_number
        assert weights.tolist() == fresh_weights(made, allowed)
    assert HolderClasses(holders.as_lists()).weights(allowed).tolist() == weights.tolist()
