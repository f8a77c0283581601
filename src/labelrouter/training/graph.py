"""The training graph (separate from inference):

    START → mine_feedback → build_datasets → [train_bi_encoder | distill_bi_encoder → reembed] → train_head
          → [train_reranker | carry_reranker] → evaluate → promote → END

`train_head` fits on the training split and `evaluate` judges it on the validation split (the newest
examples) against the current head; `promote` refits the winner on both before it becomes current. With
the retrieval stages (`stages`, `training.retrieval_stage`), the bi-encoder is fine-tuned first — distilled
from the current bundle's cross-encoder when it has one — the examples re-embedded with it, and the head
trained on those vectors: encoder, head and label vectors are judged and promoted as one bundle. With the
rerank stage a cross-encoder is trained for the candidate (`training.rerank_stage`); without it, a
current bundle's cross-encoder is carried into the candidate while it still gains on validation.

Conditional edges end the run early, saying why, when a stage lacks data or the candidate loses.

State holds only serializable values (example ids, versions, metrics); embeddings stay in the store, the
context holds only dependencies, and the candidate head is staged until it is promoted.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from labelrouter.nodes.context import ServedContext
from labelrouter.training.context import TrainingContext
from labelrouter.training.nodes import (
    after_datasets,
    after_head,
    build_datasets,
    evaluate,
    gate,
    mine_feedback,
    not_enough_data,
    nothing_new,
    promote,
    reject,
    train_head,
)
from labelrouter.training.rerank_stage import carry_reranker, train_reranker
from labelrouter.training.retrieval_stage import distill_bi_encoder, reembed, train_bi_encoder
from labelrouter.training.state import TrainingState


def build_training_graph(default_context: Callable[[], TrainingContext] | None = None) -> StateGraph:
    """The uncompiled training graph; run it with `context=build_training_context(...)`. `default_context`
    is for hosts that cannot pass one (the `langgraph.json` entry): a run that brings none gets the one it
    returns (one per server: a served training run is one at a time)."""
    builder = StateGraph(TrainingState, context_schema=TrainingContext if default_context is None else ServedContext)

    def served(step: Callable[..., Any]) -> Callable[..., Any]:
        if default_context is None:
            return step

        @functools.wraps(step)
        def run(state: TrainingState, runtime: Runtime[TrainingContext]) -> Any:
            if not isinstance(runtime.context, TrainingContext):
                runtime = runtime.override(context=default_context())
            return step(state, runtime)
        return run

    for node in (mine_feedback, build_datasets, not_enough_data, nothing_new, train_bi_encoder, distill_bi_encoder,
                 reembed, train_head, train_reranker, carry_reranker, evaluate, promote, reject):
        builder.add_node(node.__name__, served(node))
    builder.add_edge(START, "mine_feedback")
    builder.add_edge("mine_feedback", "build_datasets")
    builder.add_conditional_edges("build_datasets", served(after_datasets),
                                  ["not_enough_data", "nothing_new", "train_bi_encoder", "distill_bi_encoder",
                                   "train_head"])
    builder.add_edge("train_bi_encoder", "reembed")
    builder.add_edge("distill_bi_encoder", "reembed")
    builder.add_edge("reembed", "train_head")
    builder.add_edge("not_enough_data", END)
    builder.add_edge("nothing_new", END)
    builder.add_conditional_edges("train_head", served(after_head), ["train_reranker", "carry_reranker", "evaluate"])
    builder.add_edge("train_reranker", "evaluate")
    builder.add_edge("carry_reranker", "evaluate")
    builder.add_conditional_edges("evaluate", served(gate), ["promote", "reject"])
    builder.add_edge("promote", END)
    builder.add_edge("reject", END)
    return builder
