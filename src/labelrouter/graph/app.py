"""The compiled graphs for `langgraph dev` / LangGraph servers (registered in langgraph.json): the
inference graph (`labelrouter`) and the training graph (`labelrouter-train`).

Compiling is cheap: no model loads here. Dependencies come from the run's context, or, because a server
cannot pass one, are built once per server from settings (`LABELROUTER_*` environment) on the first run
that needs them. This is the only place such defaults exist.
"""

from functools import lru_cache

from labelrouter.extensions import load_extensions
from labelrouter.graph.inference import build_inference_graph
from labelrouter.graph.wiring import default_context
from labelrouter.settings import load_settings
from labelrouter.training import TrainingContext, build_training_context, build_training_graph


@lru_cache(maxsize=1)
def default_training_context() -> TrainingContext:
    """The training context from the environment's settings (the head stage; one run at a time)."""
    from labelrouter.store import open_store

    settings = load_settings()
    return build_training_context(settings, open_store(settings))


graph = build_inference_graph(extensions=load_extensions(load_settings().extensions),
                              default_context=default_context).compile()
training_graph = build_training_graph(default_context=default_training_context).compile()
