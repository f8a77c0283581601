"""The inference graph, invoked once per message: summarize → label_router → apply."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from labelrouter.extensions import PLACES, Extension
from labelrouter.nodes import apply, label_router, summarize
from labelrouter.nodes.context import LabelerContext, ServedContext
from labelrouter.state import LabelingInput, LabelingOutput, LabelingState


def build_inference_graph(*, extensions: list[Extension] | None = None,
                          default_context: Callable[[], LabelerContext] | None = None) -> StateGraph:
    """The uncompiled builder: compile it with or without a checkpointer, or add nodes first.

    Nodes get their dependencies from `runtime.context` (a `LabelerContext`), e.g.
    `build_inference_graph().compile().invoke({"message": msg}, context=ctx)`; a run without one fails.
    `extensions` are placed before label_router, between it and apply, or after apply, in the order
    given (labelrouter.extensions). `default_context` is for hosts that cannot pass a context (the
    `langgraph.json` entry): a run that brings none gets the one it returns.
    """
    # A host that cannot pass a LabelerContext (a LangGraph server) gets a schema it can build from JSON.
    builder = StateGraph(
        LabelingState, context_schema=LabelerContext if default_context is None else ServedContext,
        input_schema=LabelingInput, output_schema=LabelingOutput
    )
    checked = [e.validate() for e in extensions or ()]  # every one, so none is silently left out
    placed = {place: [e for e in checked if e.place == place] for place in PLACES}
    steps: list[tuple[str, Any]] = [
        ("summarize", summarize), *((e.name, e.as_node()) for e in placed["before_router"]),
        ("label_router", label_router), *((e.name, e.as_node()) for e in placed["after_router"]),
        ("apply", apply), *((e.name, e.as_node()) for e in placed["after_apply"]),
    ]
    previous = START
    for name, node in steps:
        wrapped = node if default_context is None or hasattr(node, "invoke") else _with_default(node, default_context)
        builder.add_node(name, wrapped)
        builder.add_edge(previous, name)
        previous = name
    builder.add_edge(previous, END)
    return builder


def _with_default(node: Callable[..., Any], factory: Callable[[], LabelerContext]) -> Callable[..., Any]:
    def run(state: LabelingState, runtime: Runtime[LabelerContext]) -> Any:
        if not isinstance(runtime.context, LabelerContext):
            runtime = runtime.override(context=factory())
        return node(state, runtime)

    run.__name__ = getattr(node, "__name__", "node")
    return run
