"""The one split policy: which examples validate a model and which train it.

Time order when there is one: the newest `fraction` validate (the model is judged on mail it has not
seen, as it will be used). Items without a time key have no order worth trusting (data files are often
grouped by label, so the last 20 % of a file can be a few labels), so they get a seeded random order.
Used by `eval` (rows, by `date`) and the important head. The training graph validates a candidate with
`learnable_holdout`: only examples the model in use has not learned, and never more of a label than it
trains on.
"""

from __future__ import annotations

import math
from collections import Counter
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


def learnable_holdout(indices: Sequence[int], keys: Sequence[str | None], labels: Sequence[str],
                      new: Sequence[bool], fraction: float, *, at_least: int = 0,
                      seed: int = 0) -> tuple[list[int], list[int]]:
    """(train, validation) for judging a candidate against the model in use: validation holds only `new`
    examples (those the model in use has not learned), the newest first, and never more of a label than
    training has.

    A new example may validate only while its label has more examples in training (learned ones included)
    than in validation; otherwise it trains. A label the model knows well validates on all its new mail, as
    before; a label the user has just begun to file into (a new folder, a new sender) alternates, oldest
    first, between training and validation, so a candidate learns it. A label's only example validates too
    when the model in use has none of it (the gate leaves it out of its judgment).
    Validation is the newest `fraction` of all the examples, or `at_least` of them when there are that many
    to hold out."""
    ordered = time_order(indices, keys, seed=seed)
    trained = Counter(labels[i] for i in ordered if not new[i])
    arrived = Counter(labels[i] for i in ordered if new[i])
    held: Counter[str] = Counter()
    eligible = []
    for i in ordered:
        if not new[i]:
            continue
        # A label's only example, new to the model in use too, validates: mail of labels a model has not
        # learned is part of what it will see, and its pull against the router is fitted on validation.
        # The gate does not judge the candidate on it (`training.graph.evaluate`).
        lone = trained[labels[i]] == 0 and arrived[labels[i]] == 1
        if trained[labels[i]] > held[labels[i]] or lone:
            eligible.append(i)
            held[labels[i]] += 1
        else:
            trained[labels[i]] += 1
    size = min(len(eligible), max(math.ceil(fraction * len(ordered)), at_least))
    chosen = set(eligible[len(eligible) - size:])
    return [i for i in ordered if i not in chosen], [i for i in ordered if i in chosen]
