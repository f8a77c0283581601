"""Graph builders and their run context."""

from labelrouter.graph.context import LabelerContext, build_context
from labelrouter.graph.inference import build_inference_graph

__all__ = ["LabelerContext", "build_context", "build_inference_graph"]
