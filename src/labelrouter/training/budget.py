"""What a model-training stage may spend, and what it reports: shared by the bi-encoder and the
cross-encoder, both trained through sentence-transformers' trainers (`run_budgeted`).

A **budget** bounds a stage three ways — optimizer steps, training examples, wall-clock minutes — and the
stage stops at whichever comes first, saying which (`StageReport.stopped_by`). On two CPU cores a step is
seconds, so the defaults are modest; given a GPU the same code simply does more per minute. bf16 only
where the hardware has it (a GPU, or a CPU with AMX/AVX512-BF16): on other CPUs autocast is several times
slower.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from labelrouter.models.encoder import native_bf16


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


def planned_steps(budget: Budget, n_rows: int, batch: int, epochs: float) -> int:
    """Optimizer steps: `epochs` passes over the rows, at most the budget's steps."""
    return max(1, min(budget.steps, math.ceil(epochs * n_rows / batch)))


def run_budgeted(stage: str, make_trainer: Callable[[Any, list[Any]], Any], args_class: Any, *, budget: Budget,
                 n_rows: int, batch: int, steps: int, learning_rate: float, device: str, seed: int,
                 progress: Callable[[str], None] | None) -> StageReport:
    """Train with `make_trainer(args, callbacks)` (a sentence-transformers trainer) within `budget`;
    returns the stage's report (steps, rows, seconds, what stopped it, the loss curve)."""
    import torch
    from transformers import TrainerCallback

    say = progress or (lambda _m: None)
    report = StageReport(stage, examples=n_rows)
    started = time.perf_counter()
    name = stage.replace("_", "-")

    class Limits(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            elapsed = time.perf_counter() - started
            if state.global_step % max(1, steps // 10) == 0 or state.global_step == steps:
                say(f"{name}: step {state.global_step}/{steps}, {elapsed:.0f} s")
            if elapsed > budget.minutes * 60:
                report.stopped_by = "minutes"
                control.should_training_stop = True
            return control

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kwargs: Any) -> None:
            if logs and "loss" in logs:
                report.metrics.setdefault("loss", []).append(round(float(logs["loss"]), 4))

    bf16 = device.startswith("cuda") and torch.cuda.is_bf16_supported() or (device == "cpu" and native_bf16())
    with tempfile.TemporaryDirectory(prefix=f"labelrouter-{name}-") as scratch:
        args = args_class(
            output_dir=scratch, max_steps=steps, per_device_train_batch_size=batch, learning_rate=learning_rate,
            warmup_steps=max(1, steps // 10), weight_decay=0.01, seed=seed, data_seed=seed, bf16=bf16,
            use_cpu=device == "cpu", save_strategy="no", eval_strategy="no", report_to="none",
            logging_steps=max(1, steps // 10), disable_tqdm=True, dataloader_drop_last=n_rows > batch,
        )
        trainer = make_trainer(args, [Limits()])
        state = trainer.train()
    report.steps = int(trainer.state.global_step)
    report.seconds = time.perf_counter() - started
    report.stopped_by = report.stopped_by or ("steps" if steps == budget.steps else "data")
    report.metrics["train_loss"] = round(float(state.training_loss), 4)
    return report
