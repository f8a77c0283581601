"""Graph builders and their run context."""

from labelrouter.graph.inference import build_inference_graph
from labelrouter.graph.wiring import LabelerContext, build_context

__all__ = ["LabelerContext", "build_context", "build_inference_graph"]
