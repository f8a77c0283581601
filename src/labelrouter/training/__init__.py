"""Training: imported and mined examples → a candidate head → evaluated against the current one → promoted.

`build_training_graph()` is the graph (`labelrouter graph --graph train` draws it); `build_training_context`
wires it from settings; `run_training` is what `labelrouter train` and a nightly scheduler call.
"""

from __future__ import annotations

import logging
from typing import Any

from labelrouter.artifacts import open_artifacts
from labelrouter.labels import LabelSet, load_label_set
from labelrouter.models.analysis import AnalysisCache
from labelrouter.models.encoder import Encoder
from labelrouter.models.encoder_store import serving_encoder
from labelrouter.models.label_index import LabelIndex
from labelrouter.models.registry import ModelRegistry
from labelrouter.models.router import Router
from labelrouter.settings import Settings
from labelrouter.store.base import Store
from labelrouter.training.context import TrainingContext
from labelrouter.training.graph import build_training_graph
from labelrouter.training.policy import POLICY_FIELDS, TrainingPolicy
from labelrouter.training.state import TrainingState

log = logging.getLogger(__name__)
# `labelrouter train --stages` and the fleet's training task: which stages each recipe runs.
STAGES = {"head": frozenset({"head"}), "retrieval": frozenset({"head", "retrieval"}),
          "rerank": frozenset({"head", "rerank"}), "all": frozenset({"head", "retrieval", "rerank"})}
ANALYSIS_FILE = "lexical-analysis.npz"  # in the cache folder: derived from the stored documents, safe to delete


def build_training_context(settings: Settings, store: Store, *, labels: LabelSet | None = None,
                           encoder: Encoder | None = None, **overrides: Any) -> TrainingContext:
    labels = labels or load_label_set(settings.labels_path)
    registry = ModelRegistry(open_artifacts(settings))
    encoder = encoder or serving_encoder(settings, registry)
    index = LabelIndex.build(labels, encoder, cache_dir=settings.resolved_cache_dir)
    overrides.setdefault("archive_target_precision", settings.archive_target_precision)
    overrides.setdefault("target_precision", settings.target_precision)
    overrides.setdefault("min_coverage", settings.min_coverage)
    overrides.setdefault("fallback_on", settings.fallback_on)
    overrides.setdefault("cache_dir", settings.resolved_cache_dir)  # candidate encoders and rerankers unpack here
    if "analysis" not in overrides:
        overrides.setdefault("analysis_path", settings.resolved_cache_dir / ANALYSIS_FILE)
        overrides["analysis"] = AnalysisCache.load(overrides["analysis_path"])
    policy = TrainingPolicy(**{k: overrides.pop(k) for k in list(overrides) if k in POLICY_FIELDS})
    return TrainingContext(store=store, encoder=encoder, router=Router.from_settings(settings, labels, index),
                           registry=registry, policy=policy, **overrides)


def run_training(ctx: TrainingContext, on_node: Any = None) -> TrainingState:
    """Run the training graph; `on_node(name)` is called as each stage finishes (for progress).

    Candidates are staged in the model registry until promoted. A run that fails (or a killed one,
    cleaned up by the next run) leaves nothing staged."""
    ctx.registry.discard()
    graph = build_training_graph().compile()
    final: Any = {}
    try:
        for mode, chunk in graph.stream(TrainingState(), context=ctx, stream_mode=["updates", "values"]):
            if mode == "values":
                final = chunk
            elif on_node:
                for node in chunk:
                    on_node(node)
    except BaseException:
        ctx.registry.discard()
        raise
    if ctx.analysis_path is not None:
        try:
            ctx.analysis.save(ctx.analysis_path)
        except OSError as exc:  # a cache: the next run analyses afresh
            log.warning("cannot save the lexical analyses to %s: %s", ctx.analysis_path, exc)
    return final if isinstance(final, TrainingState) else TrainingState.model_validate(final)


__all__ = ["STAGES", "TrainingContext", "TrainingPolicy", "TrainingState", "build_training_context", "build_training_graph", "run_training"]
