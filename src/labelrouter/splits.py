"""The one split policy: which examples validate a model and which train it.

Time order when there is one: the newest `fraction` validate (the model is judged on mail it has not
seen, as it will be used). Items without a time key have no order worth trusting (data files are often
grouped by label, so the last 20 % of a file can be a few labels), so they get a seeded random order.
Used by the training graph (stored examples, by `occurred_at`) and `eval` (rows, by `date`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def time_order(indices: Sequence[int], keys: Sequence[str | None], *, seed: int = 0) -> list[int]:
    """`indices` oldest first when every one has a key (ties keep their order), else a seeded shuffle."""
    indices = list(indices)
    if indices and all(keys[i] for i in indices):
        return sorted(indices, key=lambda i: str(keys[i]))
    return [indices[j] for j in np.random.default_rng(seed).permutation(len(indices))]


def holdout(indices: Sequence[int], keys: Sequence[str | None], fraction: float, *,
            seed: int = 0) -> tuple[list[int], list[int]]:
    """(older, newest): the newest `fraction` of `indices` held out (the older part rounded down)."""
    ordered = time_order(indices, keys, seed=seed)
    keep = int(len(ordered) * (1 - fraction))
    return ordered[:keep], ordered[keep:]
