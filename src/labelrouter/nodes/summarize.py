"""Node `summarize`: a short summary of the message (LLM when configured, offline otherwise)."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from labelrouter.nodes.context import LabelerContext, context_of
from labelrouter.state import LabelingState


def summarize(state: LabelingState, runtime: Runtime[LabelerContext]) -> dict[str, Any]:
    summary, errors = context_of(runtime).summarizer.summarize(state.message)
    return {"summary": summary, "errors": errors}
