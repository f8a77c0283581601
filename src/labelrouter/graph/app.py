"""The compiled inference graph for `langgraph dev` / LangGraph servers (registered in langgraph.json).

Compiling is cheap: no model loads here. Dependencies come from the run's context, or are built once
from settings (`LABELROUTER_*` environment) on the first message when the host passes none.
"""

from labelrouter.graph.inference import build_inference_graph

graph = build_inference_graph().compile()
