"""The inference graph, invoked once per message: summarize → label_router → apply."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from labelrouter.context import LabelerContext
from labelrouter.nodes import apply, label_router, summarize
from labelrouter.state import LabelingInput, LabelingOutput, LabelingState


def build_inference_graph(*, default_context: Callable[[], LabelerContext] | None = None) -> StateGraph:
    """The uncompiled builder: compile it with or without a checkpointer, or add nodes first.

    Nodes get their dependencies from `runtime.context` (a `LabelerContext`), e.g.
    `build_inference_graph().compile().invoke({"message": msg}, context=ctx)`; a run without one fails.
    `default_context` is for hosts that cannot pass a context (the `langgraph.json` entry): a run that
    brings none gets the one it returns.
    """
    builder = StateGraph(
        LabelingState, context_schema=LabelerContext, input_schema=LabelingInput, output_schema=LabelingOutput
    )
    for name, node in (("summarize", summarize), ("label_router", label_router), ("apply", apply)):
        builder.add_node(name, node if default_context is None else _with_default(node, default_context))
    builder.add_edge(START, "summarize")
    builder.add_edge("summarize", "label_router")
    builder.add_edge("label_router", "apply")
    builder.add_edge("apply", END)
    return builder


def _with_default(node: Callable[..., Any], factory: Callable[[], LabelerContext]) -> Callable[..., Any]:
    def run(state: LabelingState, runtime: Runtime[LabelerContext]) -> Any:
        if not isinstance(runtime.context, LabelerContext):
            runtime = runtime.override(context=factory())
        return node(state, runtime)

    run.__name__ = getattr(node, "__name__", "node")
    return run
