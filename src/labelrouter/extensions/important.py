"""The "important" head as an extension node (the second one labelrouter ships, after sender rules).

After `label_router`, it reads the message vector and writes `extensions.important`:
`{"probability": p, "important": p >= 0.5}` — the chance the user marks the message important (Gmail's
IMPORTANT flag, or a flagged mark on a Maildir), from a logistic regression the training graph fits on the
flags nightly syncs record and ships in the same model bundle, promoted by the same gate. Until a
promoted bundle has one, the node writes nothing.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from labelrouter.extensions import Extension
from labelrouter.nodes.context import context_of
from labelrouter.state import LabelingState


def predict_important(state: LabelingState, runtime: Any) -> dict[str, Any]:
    ctx = context_of(runtime)
    if state.embedding is None:
        return {}
    probability = ctx.head.important_probability(np.asarray([state.embedding], dtype=np.float32))
    if probability is None:
        return {}
    p = float(probability[0])
    return {"extensions": {"important": {"probability": round(p, 4), "important": p >= 0.5}}}


extension = Extension(
    name="important", node=predict_important, place="after_router", reads=("embedding",),
    writes=("extensions",), description="The chance the user marks the message important.",
)
