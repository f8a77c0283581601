"""Graph nodes. The node id is the function name."""

from labelrouter.nodes.apply import apply
from labelrouter.nodes.label_router import label_router
from labelrouter.nodes.summarize import summarize

__all__ = ["apply", "label_router", "summarize"]
