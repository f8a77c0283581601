"""Typed state of the graphs."""

from labelrouter.state.graph_state import (
    ApplyResult,
    Candidate,
    LabelingInput,
    LabelingOutput,
    LabelingState,
    Routing,
    Summary,
)
from labelrouter.state.message import EmailMessage

__all__ = [
    "ApplyResult",
    "Candidate",
    "EmailMessage",
    "LabelingInput",
    "LabelingOutput",
    "LabelingState",
    "Routing",
    "Summary",
]
