"""The inference graph, invoked once per message: summarize → label_router → apply."""

from __future__ import annotations

from langgraph.graph import END, START, StateGraph

from labelrouter.graph.context import LabelerContext
from labelrouter.nodes import apply, label_router, summarize
from labelrouter.state import LabelingInput, LabelingOutput, LabelingState


def build_inference_graph() -> StateGraph:
    """The uncompiled builder: compile it with or without a checkpointer, or add nodes first.

    Nodes get their dependencies from `runtime.context` (a `LabelerContext`), e.g.
    `build_inference_graph().compile().invoke({"message": msg}, context=ctx)`.
    """
    builder = StateGraph(
        LabelingState, context_schema=LabelerContext, input_schema=LabelingInput, output_schema=LabelingOutput
    )
    builder.add_node("summarize", summarize)
    builder.add_node("label_router", label_router)
    builder.add_node("apply", apply)
    builder.add_edge(START, "summarize")
    builder.add_edge("summarize", "label_router")
    builder.add_edge("label_router", "apply")
    builder.add_edge("apply", END)
    return builder
