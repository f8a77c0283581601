"""The bi-encoder's loss: Multiple Negatives Ranking over label texts, aware of what a label is.

A training row is (message text, its label's text, hard-negative label texts…) with a `label` column of
label ids: [the true label, each hard negative's]. As in sentence-transformers'
`MultipleNegativesRankingLoss`, each message is scored against every label text in the batch, and the loss
is the cross-entropy of its own label among them. Two things differ, both because the candidates are
labels, not documents:

* **No same-label negatives, each label once.** With 20 labels and a batch of 32, several messages share a
  label: plain MNR would push a message away from its own label's text because another message brought it.
  Every candidate whose label is the message's own (other than its positive) is masked, and each other
  label counts once in the softmax however many rows brought it.
* **Hierarchy weighting** (`weighting="hierarchy"`): a negative's term in the softmax is multiplied by
  w = (2 + ε) / (d + ε), d its tree distance to the true label (`LabelSet.tree_distances`): 1 for a sibling
  (d = 2), 0.6 for a cousin (d = 4, ε = 1), 1.5 for a parent or child (d = 1). Siblings are pushed
  hardest; a distant label, already far, counts for less (the seed's "loss weight ∝ 1 / (tree distance +
  ε)"). `weighting="flat"` is plain MNR with the masking above.

It has the library's loss interface (`forward(sentence_features, labels)`, `get_config_dict`), so
`SentenceTransformerTrainer` trains with it as with any of its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

SIBLING_DISTANCE = 2


class LabelRankingLoss(nn.Module):
    def __init__(self, model: Any, distances: np.ndarray, *, scale: float = 20.0,
                 weighting: Literal["flat", "hierarchy"] = "hierarchy", epsilon: float = 1.0):
        """`distances`: (labels × labels) tree distances, indexed by the ids in the `label` column."""
        super().__init__()
        if weighting not in ("flat", "hierarchy"):
            raise ValueError(f"weighting must be 'flat' or 'hierarchy', not {weighting!r}")
        self.model, self.scale, self.weighting, self.epsilon = model, scale, weighting, epsilon
        d = torch.as_tensor(np.asarray(distances, dtype=np.float32))
        log_w = torch.log((SIBLING_DISTANCE + epsilon) / (d + epsilon)) if weighting == "hierarchy" else torch.zeros_like(d)
        log_w.fill_diagonal_(0.0)  # the positive's own term is never weighted
        self.register_buffer("log_weights", log_w, persistent=False)

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor) -> Tensor:
        from sentence_transformers.base.losses.merged_forward import embed_columns

        return self.compute_loss_from_embeddings(embed_columns(self.model, sentence_features), labels)

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor) -> Tensor:
        """`embeddings`: [messages (b × dim), positives (b × dim), negatives… (b × dim each)];
        `labels`: (b × columns − 1) label ids, the positive's first."""
        queries, candidates = embeddings[0], torch.cat(embeddings[1:], dim=0)
        ids = labels.long().reshape(queries.size(0), -1)
        b = queries.size(0)
        candidate_ids = ids.T.reshape(-1)  # the candidates' order: the positive column, then each negative column
        true = ids[:, 0]
        logits = _normalized(queries) @ _normalized(candidates).T * self.scale  # cosine similarities
        logits = logits + self.log_weights.to(logits.device)[true][:, candidate_ids]
        keep = _first_of_each_label(candidate_ids).unsqueeze(0).expand(b, -1).clone()
        keep &= candidate_ids.unsqueeze(0) != true.unsqueeze(1)  # no candidate of the message's own label…
        rows = torch.arange(b, device=logits.device)
        keep[rows, rows] = True  # …but its own positive
        logits = logits.masked_fill(~keep, float("-inf"))
        return -(logits[rows, rows] - torch.logsumexp(logits, dim=1)).mean()

    def get_config_dict(self) -> dict[str, Any]:
        return {"scale": self.scale, "weighting": self.weighting, "epsilon": self.epsilon}


def _normalized(x: Tensor) -> Tensor:
    return torch.nn.functional.normalize(x, p=2, dim=1)


def _first_of_each_label(ids: Tensor) -> Tensor:
    """A mask over `ids`: True at the first occurrence of each id."""
    order = torch.argsort(ids, stable=True)
    sorted_ids = ids[order]
    first_sorted = torch.ones_like(sorted_ids, dtype=torch.bool)
    first_sorted[1:] = sorted_ids[1:] != sorted_ids[:-1]
    mask = torch.zeros_like(first_sorted)
    mask[order] = first_sorted
    return mask


class DistilledRankingLoss(nn.Module):
    """`LabelRankingLoss` plus sentence-transformers' `DistillKLDivLoss` on the same embeddings: the seed's
    "MNR + KL distillation". The KL term makes the bi-encoder's distribution over each row's own
    candidates (its positive and hard negatives: softmax of `scale` × cosine, the ranking loss's logits)
    follow a teacher's — the promoted cross-encoder's logits for the same (message, label) pairs
    (`training.retrieval_stage.distill_bi_encoder`) — so it learns which wrong labels are nearly right, not
    only which one is right. `labels` rows are the candidates' label ids, then the teacher's scores of the
    same candidates, in column order."""

    def __init__(self, model: Any, distances: np.ndarray, *, weighting: Literal["flat", "hierarchy"] = "hierarchy",
                 scale: float = 20.0, distill_weight: float = 1.0, teacher_temperature: float = 1.0):
        from sentence_transformers.sentence_transformer.losses import DistillKLDivLoss

        super().__init__()
        self.model, self.scale, self.distill_weight = model, scale, distill_weight
        self.ranking = LabelRankingLoss(model, distances, scale=scale, weighting=weighting)
        self.distill = DistillKLDivLoss(model, similarity_fct=self._scaled_cosine,
                                        teacher_temperature=teacher_temperature)

    def _scaled_cosine(self, a: Tensor, b: Tensor) -> Tensor:
        return (_normalized(a) * _normalized(b)).sum(dim=1) * self.scale

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor) -> Tensor:
        from sentence_transformers.base.losses.merged_forward import embed_columns

        return self.compute_loss_from_embeddings(embed_columns(self.model, sentence_features), labels)

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor) -> Tensor:
        n = len(embeddings) - 1
        if labels.dim() != 2 or labels.size(1) != 2 * n:
            raise ValueError(f"expected labels of {2 * n} columns (label ids, then teacher scores), got {tuple(labels.shape)}")
        ids, teacher = labels[:, :n], labels[:, n:].float()
        return self.ranking.compute_loss_from_embeddings(embeddings, ids) + \
            self.distill_weight * self.distill.compute_loss_from_embeddings(embeddings, teacher)

    def get_config_dict(self) -> dict[str, Any]:
        return {**self.ranking.get_config_dict(), "distill_weight": self.distill_weight,
                **{f"distill_{k}": v for k, v in self.distill.get_config_dict().items() if k != "similarity_fct"}}
