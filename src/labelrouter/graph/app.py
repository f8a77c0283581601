"""The compiled inference graph for `langgraph dev` / LangGraph servers (registered in langgraph.json).

Compiling is cheap: no model loads here. Dependencies come from the run's context, or, because a host
like `langgraph dev` cannot pass one, are built once from settings (`LABELROUTER_*` environment) on the
first message. This is the only place such a default exists.
"""

from labelrouter.extensions import load_extensions
from labelrouter.graph.context import default_context
from labelrouter.graph.inference import build_inference_graph
from labelrouter.settings import load_settings

graph = build_inference_graph(extensions=load_extensions(load_settings().extensions),
                              default_context=default_context).compile()
