"""Fine-tuning the bi-encoder on (message, label text, hard negatives) rows with `LabelRankingLoss`,
through sentence-transformers' own trainer, within a budget.

A **budget** bounds a stage three ways — optimizer steps, training examples, wall-clock minutes — and the
stage stops at whichever comes first, saying which (`StageReport.stopped_by`). On two CPU cores a step of
32 mail-length messages is seconds, so the defaults are modest and the same code, given a GPU, simply
does more per minute. bf16 only where the hardware has it (a GPU, or a CPU with AMX/AVX512-BF16): on
other CPUs autocast is several times slower.

The result is a model directory (safetensors weights, tokenizer, config: nothing that executes code on
load) that `models.encoder.Encoder` loads like the packaged one; its version is its content fingerprint,
so vectors it embeds are stored under a version of their own.
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from labelrouter.errors import LabelRouterError
from labelrouter.models.encoder import native_bf16
from labelrouter.training.retrieval_data import RetrievalRows

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Budget:
    """What a training stage may spend; it stops at whichever limit it reaches first."""

    steps: int = 200
    examples: int = 4_000
    minutes: float = 30.0


@dataclass
class StageReport:
    stage: str
    steps: int = 0
    examples: int = 0  # distinct training rows the stage drew
    seconds: float = 0.0
    stopped_by: str = ""  # "steps", "minutes" or "data" (every row seen the allowed number of times)
    metrics: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"stage": self.stage, "steps": self.steps, "examples": self.examples,
                "seconds": round(self.seconds, 1), "stopped_by": self.stopped_by, "metrics": self.metrics}


def train_bi_encoder(base: Path, rows: RetrievalRows, distances: np.ndarray, out_dir: Path, *,
                     weighting: Literal["flat", "hierarchy"] = "hierarchy", budget: Budget = Budget(),
                     batch_size: int = 32, learning_rate: float = 5e-5, max_seq_length: int = 128,
                     epochs: float = 1.0, device: str | None = None, seed: int = 0,
                     progress: Callable[[str], None] | None = None) -> StageReport:
    """Fine-tune the encoder at `base` on `rows` and save it to `out_dir`. `epochs`: passes over the rows at
    most (the step and minute budgets may stop it sooner). `max_seq_length`: word pieces of each message
    seen in training (shorter than inference's 256: half the cost per step, and the head of a message says
    most of what retrieval needs)."""
    import torch
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.trainer import SentenceTransformerTrainer
    from sentence_transformers.sentence_transformer.training_args import SentenceTransformerTrainingArguments
    from transformers import TrainerCallback

    from labelrouter.training.retrieval_loss import LabelRankingLoss

    if len(rows) < 2:
        raise LabelRouterError(f"the bi-encoder needs at least 2 training rows, got {len(rows)}")
    say = progress or (lambda _m: None)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = SentenceTransformer(str(base), device=device, local_files_only=True)
    inference_length = model.max_seq_length
    model.max_seq_length = min(max_seq_length, inference_length)
    columns = {k: v[: budget.examples] for k, v in rows.columns.items()}
    n_rows = len(columns["message"])
    batch = min(batch_size, n_rows)
    steps = max(1, min(budget.steps, math.ceil(epochs * n_rows / batch)))
    dataset = Dataset.from_dict(columns)
    loss = LabelRankingLoss(model, distances, weighting=weighting)
    report = StageReport("bi_encoder", examples=n_rows)
    started = time.perf_counter()

    class Limits(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            elapsed = time.perf_counter() - started
            if state.global_step % max(1, steps // 10) == 0 or state.global_step == steps:
                say(f"bi-encoder: step {state.global_step}/{steps}, {elapsed:.0f} s")
            if elapsed > budget.minutes * 60:
                report.stopped_by = "minutes"
                control.should_training_stop = True
            return control

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kwargs: Any) -> None:
            if logs and "loss" in logs:
                report.metrics.setdefault("loss", []).append(round(float(logs["loss"]), 4))

    bf16 = device.startswith("cuda") and torch.cuda.is_bf16_supported() or (device == "cpu" and native_bf16())
    with tempfile.TemporaryDirectory(prefix="labelrouter-bi-") as scratch:
        args = SentenceTransformerTrainingArguments(
            output_dir=scratch, max_steps=steps, per_device_train_batch_size=batch, learning_rate=learning_rate,
            warmup_steps=max(1, steps // 10), weight_decay=0.01, seed=seed, data_seed=seed, bf16=bf16,
            use_cpu=device == "cpu", save_strategy="no", eval_strategy="no", report_to="none",
            logging_steps=max(1, steps // 10), disable_tqdm=True, dataloader_drop_last=n_rows > batch,
        )
        trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset, loss=loss,
                                             callbacks=[Limits()])
        state = trainer.train()
    report.steps = int(trainer.state.global_step)
    report.seconds = time.perf_counter() - started
    report.stopped_by = report.stopped_by or ("steps" if steps == budget.steps else "data")
    report.metrics["train_loss"] = round(float(state.training_loss), 4)
    model.max_seq_length = inference_length  # inference reads as much as the base model did
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save(str(out_dir), safe_serialization=True)
    say(f"bi-encoder: {report.steps} steps on {n_rows} rows in {report.seconds:.0f} s ({report.stopped_by})")
    return report
