"""Fine-tuning the bi-encoder on (message, label text, hard negatives) rows with `LabelRankingLoss`,
through sentence-transformers' own trainer, within a budget.

The budget (steps, examples, minutes; `training.budget`) bounds it; on two CPU cores a step of 32
messages is about a second and a half.

The result is a model directory (safetensors weights, tokenizer, config: nothing that executes code on
load) that `models.encoder.Encoder` loads like the packaged one; its version is its content fingerprint,
so vectors it embeds are stored under a version of their own.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np

from labelrouter.errors import LabelRouterError
from labelrouter.training.budget import Budget, StageReport, planned_steps, run_budgeted
from labelrouter.training.retrieval_data import RetrievalRows

BATCH_SIZE = 32  # messages per step


def train_bi_encoder(base: Path, rows: RetrievalRows, distances: np.ndarray, out_dir: Path, *,
                     weighting: Literal["flat", "hierarchy"] = "hierarchy", budget: Budget | None = None,
                     batch_size: int = BATCH_SIZE, learning_rate: float = 5e-5, max_seq_length: int = 128,
                     epochs: float = 1.0, device: str | None = None, seed: int = 0,
                     teacher: np.ndarray | None = None, distill_weight: float = 1.0,
                     progress: Callable[[str], None] | None = None) -> StageReport:
    """Fine-tune the encoder at `base` on `rows` and save it to `out_dir`. `epochs`: passes over the rows at
    most (the step and minute budgets may stop it sooner). `max_seq_length`: word pieces of each message
    seen in training (shorter than inference's 256: half the cost per step, and the head of a message says
    most of what retrieval needs). `teacher`: a cross-encoder's scores of each row's candidates (rows ×
    candidates, in column order), which makes the loss `DistilledRankingLoss` (MNR + KL to the teacher)."""
    import torch
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.trainer import SentenceTransformerTrainer
    from sentence_transformers.sentence_transformer.training_args import SentenceTransformerTrainingArguments

    from labelrouter.training.retrieval_loss import DistilledRankingLoss, LabelRankingLoss

    budget = budget or Budget()
    if len(rows) < 2:
        raise LabelRouterError(f"the bi-encoder needs at least 2 training rows, got {len(rows)}")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = SentenceTransformer(str(base), device=device, local_files_only=True)
    inference_length = model.max_seq_length
    model.max_seq_length = min(max_seq_length, inference_length)
    columns = {k: v[: budget.examples] for k, v in rows.columns.items()}
    n_rows = len(columns["message"])
    if teacher is not None:
        if len(teacher) < n_rows or np.shape(teacher)[1:] != (len(columns["label"][0]),):
            raise LabelRouterError(f"teacher scores of shape {np.shape(teacher)} do not cover {n_rows} rows of "
                                   f"{len(columns['label'][0])} candidates")
        columns["label"] = [[*ids, *map(float, scores)] for ids, scores in zip(columns["label"], teacher, strict=False)]
    batch = min(batch_size, n_rows)
    steps = planned_steps(budget, n_rows, batch, epochs)
    dataset = Dataset.from_dict(columns)
    loss = LabelRankingLoss(model, distances, weighting=weighting) if teacher is None else \
        DistilledRankingLoss(model, distances, weighting=weighting, distill_weight=distill_weight)
    report = run_budgeted(
        "bi_encoder", lambda args, callbacks: SentenceTransformerTrainer(
            model=model, args=args, train_dataset=dataset, loss=loss, callbacks=callbacks),
        SentenceTransformerTrainingArguments, budget=budget, n_rows=n_rows, batch=batch, steps=steps,
        learning_rate=learning_rate, device=device, seed=seed, progress=progress)
    if teacher is not None:
        report.metrics["distill_weight"] = distill_weight
    model.max_seq_length = inference_length  # inference reads as much as the base model did
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save(str(out_dir), safe_serialization=True)
    (progress or (lambda _m: None))(f"bi-encoder: {report.steps} steps on {n_rows} rows in {report.seconds:.0f} s ({report.stopped_by})")
    return report
