"""Node `label_router`: embed → retrieve top-K labels → router × head → argmax or fallback.

The scoring and its explanation are the Router's (`labelrouter.models.router`); this node embeds and scores one
message (with the rest of its chunk when the labeler batches: `LabelerContext.route`) and hands back the
decision, the vector, the text it was embedded from and the document the head read.
"""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from labelrouter.models.router import document_of
from labelrouter.nodes.context import LabelerContext, context_of
from labelrouter.state import LabelingState


def label_router(state: LabelingState, runtime: Runtime[LabelerContext]) -> dict[str, Any]:
    ctx = context_of(runtime)
    if state.routing is not None:
        ctx.not_routing()
        return {}  # an extension before the router decided (e.g. a sender rule): nothing to route
    router = ctx.router
    if not state.message.has_content:
        ctx.not_routing()
        return {"routing": router.no_content(), "embedding": None}
    text = router.text_of(state.message, state.summary)
    document = document_of(state.message)
    vector, scores, row = ctx.route(text, document)
    return {"routing": router.explain(scores, row, document),
            "embedding": [float(x) for x in vector], "embedded_text": text, "document": document}
