"""Training rows for the retrieval models, from the stored examples (no mailbox, no re-embedding).

One row per example: (the message's embedded text, its label's retrieval text, hard-negative label
texts…) and the label ids of each (`LabelRankingLoss` reads them). The hard negatives are what the router
gets wrong, in this order of preference, one per column:

1. **confusions**: a correction's rejected label (the label we applied and the user moved it from), then
   the labels the router ranks highest for the message's stored vector, when they are not its own;
2. **siblings**: the labels sharing its parent, nearest in the router's ranking first — the confusions a
   hierarchy predicts, which the hierarchy-weighted loss pushes hardest;
3. **neighbours**: the labels of the stored examples nearest to it in embedding space (what sentence-
   transformers' `mine_hard_negatives` finds, computed here from the stored vectors instead of embedding
   every text again).

The first column takes the best confusion, the second the best sibling (a confusion again where the label
has no sibling), the rest the next best of any kind. Examples are drawn by kind weight (corrections count
most, silver least) up to a budget, without replacement and seeded, so a run is reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from labelrouter.labels import LabelSet
from labelrouter.models.label_index import LabelIndex

NEIGHBOURS = 10  # stored examples whose labels are looked at per example
# How much an example of each kind counts, in the head's sample weights and in the draws of training rows:
# corrections teach most, then gold imports, confirmations, and silver (the model agreeing with itself).
KIND_WEIGHTS = {"correction": 3.0, "gold": 2.0, "confirmation": 1.0, "silver": 0.5}


@dataclass
class RetrievalRows:
    """Columns for the trainer: `message`, `positive`, `negative_1`…, and `label` (ids, positive first)."""

    columns: dict[str, list[Any]]
    example_ids: list[str]
    negative_sources: dict[str, int]  # how many hard negatives came from each source

    def __len__(self) -> int:
        return len(self.example_ids)

    def sample(self, n: int, seed: int = 0) -> RetrievalRows:
        """`n` rows drawn at random (seeded), in their order; all of them when there are no more. Not the
        first `n`: rows are in stored order, so a prefix is the oldest mail (or, in a data file grouped by
        label, a few labels only)."""
        if n >= len(self):
            return self
        keep = np.sort(np.random.default_rng(seed).choice(len(self), size=n, replace=False))
        return RetrievalRows({k: [v[i] for i in keep] for k, v in self.columns.items()},
                             [self.example_ids[i] for i in keep], self.negative_sources)


def retrieval_rows(rows: list[dict[str, Any]], X: np.ndarray, labels: LabelSet, index: LabelIndex,
                   *, negatives: int = 2, at_most: int | None = None, kind_weights: dict[str, float] | None = None,
                   seed: int = 0) -> RetrievalRows:
    """`rows`: stored examples (label, kind, rejected_label, embedded_text) with their vectors `X`;
    `index`: the label vectors the router retrieves with now (refreshed ones included)."""
    allowed, usable, chosen = training_examples(rows, labels, index, at_most, kind_weights, seed)
    negatives = min(negatives, int(allowed.sum()) - 1)  # as many distinct wrong labels as there are
    if not chosen or negatives < 1:
        return RetrievalRows({"message": [], "positive": [], **{f"negative_{k + 1}": [] for k in range(negatives)},
                              "label": []}, [], {})
    texts = labels.retrieval_texts()
    similarities = index.similarities(X[chosen])
    neighbour_labels = _neighbour_labels(X, [labels.index(rows[i]["label"]) for i in range(len(rows))], chosen, usable)
    columns: dict[str, list[Any]] = {"message": [], "positive": [], **{f"negative_{k + 1}": [] for k in range(negatives)},
                                     "label": []}
    sources = {"rejected": 0, "confusion": 0, "sibling": 0, "neighbour": 0, "random": 0}
    rng = np.random.default_rng(seed)
    for j, i in enumerate(chosen):
        true = labels.index(rows[i]["label"])
        ranked = [int(k) for k in np.argsort(-similarities[j], kind="stable") if allowed[k] and k != true]
        rejected = rejected_label(rows[i], labels, allowed)
        confusions = [("rejected", rejected)] if rejected is not None else []
        confusions += [("confusion", k) for k in ranked[:3]]
        parent = labels.labels[true].parent
        siblings = [("sibling", k) for k in ranked if parent is not None and labels.labels[k].parent == parent]
        neighbours = [("neighbour", k) for k in neighbour_labels[j] if allowed[k] and k != true]
        rest = [("random", int(k)) for k in rng.permutation(ranked)]
        picked = _pick(negatives, confusions, siblings, neighbours, rest)
        for source, _ in picked:
            sources[source] += 1
        columns["message"].append(rows[i]["embedded_text"])
        columns["positive"].append(texts[true])
        for k, (_, label) in enumerate(picked):
            columns[f"negative_{k + 1}"].append(texts[label])
        columns["label"].append([true, *(label for _, label in picked)])
    return RetrievalRows(columns, [rows[i]["example_id"] for i in chosen], {k: v for k, v in sources.items() if v})


def training_examples(rows: list[dict[str, Any]], labels: LabelSet, index: LabelIndex, at_most: int | None,
                      kind_weights: dict[str, float] | None, seed: int) -> tuple[np.ndarray, list[int], list[int]]:
    """(the labels retrieval may propose, as a mask; the examples a retrieval model can learn from — a
    routable label and text to read; those drawn from them within the budget) — what the bi-encoder's and
    the cross-encoder's rows start from."""
    allowed = np.zeros(len(labels), dtype=bool)
    allowed[index.labels.routable] = True
    usable = [i for i, r in enumerate(rows) if r["label"] in labels and allowed[labels.index(r["label"])]
              and (r.get("embedded_text") or "").strip()]
    return allowed, usable, draw_examples(usable, rows, at_most, kind_weights or {}, seed)


def rejected_label(row: dict[str, Any], labels: LabelSet, allowed: np.ndarray) -> int | None:
    """A correction's rejected label (the one we applied and the user moved the message from), when it is
    another routable label."""
    rejected = row.get("rejected_label")
    if rejected in labels and rejected != row["label"] and allowed[labels.index(rejected)]:
        return labels.index(rejected)
    return None


def draw_examples(usable: list[int], rows: list[dict[str, Any]], at_most: int | None, kind_weights: dict[str, float],
                  seed: int) -> list[int]:
    """Up to `at_most` of `usable`, drawn without replacement with probability ∝ kind weight; in stored order."""
    if at_most is None or len(usable) <= at_most:
        return list(usable)
    weights = np.array([kind_weights.get(rows[i]["kind"], 1.0) for i in usable], dtype=np.float64)
    picked = np.random.default_rng(seed).choice(len(usable), size=at_most, replace=False, p=weights / weights.sum())
    return [usable[k] for k in sorted(picked.tolist())]


def _neighbour_labels(X: np.ndarray, label_ids: list[int], chosen: list[int], usable: list[int],
                      chunk: int = 2048) -> list[list[int]]:
    """For each chosen example, the labels of its `NEIGHBOURS` nearest usable examples (itself excluded),
    nearest first, each label once."""
    pool = np.array(usable)
    ids = np.array(label_ids)[pool]
    found: list[list[int]] = []
    for start in range(0, len(chosen), chunk):
        part = chosen[start:start + chunk]
        sims = X[part] @ X[pool].T
        sims[np.array(part)[:, None] == pool[None, :]] = -np.inf  # not itself
        k = min(NEIGHBOURS, len(pool) - 1)
        if k <= 0:
            found += [[] for _ in part]
            continue
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        for row, cols in enumerate(top):
            order = cols[np.argsort(-sims[row, cols], kind="stable")]
            found.append(list(dict.fromkeys(int(ids[c]) for c in order)))
    return found


def _pick(n: int, confusions: list[tuple[str, int]], siblings: list[tuple[str, int]],
          neighbours: list[tuple[str, int]], rest: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """`n` distinct labels: the best confusion, the best sibling, then the best of what is left."""
    picked: list[tuple[str, int]] = []
    seen: set[int] = set()

    def take(options: list[tuple[str, int]]) -> bool:
        for source, label in options:
            if label not in seen:
                picked.append((source, label))
                seen.add(label)
                return True
        return False

    queues = [confusions, siblings or confusions]
    for queue in queues[:n]:
        take(queue) or take(confusions + neighbours + rest)
    while len(picked) < n and take(confusions + siblings + neighbours + rest):
        pass
    return picked
