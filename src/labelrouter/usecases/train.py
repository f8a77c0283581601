"""Training a mailbox's model: the training graph on its store; a better model is promoted."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from labelrouter.errors import ConfigError
from labelrouter.labels import LabelSet
from labelrouter.models.encoder import Encoder
from labelrouter.settings import Settings
from labelrouter.store.base import Store
from labelrouter.training import STAGES, TrainingState, build_training_context, run_training


def train(settings: Settings, store: Store, labels: LabelSet, *, stages: str = "head", encoder: Encoder | None = None,
          progress: Callable[[str], None] | None = None, on_node: Callable[[str], None] | None = None,
          **overrides: Any) -> TrainingState:
    """Mine, train the `stages` recipe (head, retrieval, rerank or all), judge against the current model and
    promote only a better one. `overrides` set the training context's fields (a retrieval budget, say)."""
    if stages not in STAGES:
        raise ConfigError(f"stages must be one of {sorted(STAGES)}, not {stages!r}")
    if progress is not None:
        overrides["progress"] = progress
    ctx = build_training_context(settings, store, labels=labels, encoder=encoder, stages=STAGES[stages],
                                 cache_dir=settings.resolved_cache_dir, **overrides)
    return run_training(ctx, on_node=on_node)
