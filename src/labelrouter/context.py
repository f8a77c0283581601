"""Run dependencies of the inference graph, handed to nodes through `runtime.context`.

Beside the state, not inside `graph/`: nodes import this module, never the graph modules that import the
nodes. `context_of(runtime)` is how a node gets its dependencies; a run without a `LabelerContext` is an
error, not a silent fallback (only the `langgraph.json` entry builds one from the environment, in
`graph/app.py`). Builders from settings are in `labelrouter.graph.context`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from labelrouter.labels import LabelSet
from labelrouter.mail.mailbox import Mailbox
from labelrouter.models.batching import MicroBatcher
from labelrouter.models.encoder import Encoder
from labelrouter.models.head import ColdStartHead, Head
from labelrouter.models.label_index import LabelIndex
from labelrouter.models.scoring import ScoringParams
from labelrouter.store.base import Store
from labelrouter.summarize import Summarizer

Mode = Literal["apply", "dry-run", "decide"]


@dataclass
class LabelerContext:
    labels: LabelSet
    encoder: Encoder
    index: LabelIndex
    summarizer: Summarizer
    params: ScoringParams = field(default_factory=ScoringParams)
    head: Head = field(default_factory=ColdStartHead)
    mode: Mode = "decide"  # decide: explain only; dry-run: say what apply would do; apply: do it and persist
    mailbox: Mailbox | None = None
    mailbox_ids: dict[str, str] = field(default_factory=dict)  # label name → mailbox label id
    # Mailbox label ids that count as "ours": this config's and every label labelrouter created before.
    known_label_ids: set[str] = field(default_factory=set)
    archive_threshold_default: float = 0.8
    store: Store | None = None
    batcher: MicroBatcher | None = None
    snippet_chars: int = 1_500
    # The settings the context was built from, for extensions that need their own configuration.
    settings: Any = None
    _active: tuple[str, LabelIndex] | None = field(default=None, repr=False)

    @property
    def model_version(self) -> str:
        return f"{self.encoder.version}+head:{self.head.version}"

    @property
    def active_index(self) -> LabelIndex:
        """Label vectors in use: descriptions, with the current head's refreshed vectors where it has them."""
        key = self.head.version
        if self._active is None or self._active[0] != key:
            self._active = (key, self.index.with_vectors(getattr(self.head, "label_vectors", {}) or {}))
        return self._active[1]

    @property
    def scoring(self) -> ScoringParams:
        """Scoring parameters; a promoted head brings its own refit fallback threshold."""
        threshold = (getattr(self.head, "thresholds", None) or {}).get("fallback")
        return self.params if threshold is None else dataclasses.replace(self.params, threshold=float(threshold))

    def archive_threshold(self, label: str) -> float | None:
        """Confidence a label that archives needs to take the message out of the inbox (None: it does not
        archive). The label's own `archive_confidence`, else the current head's refit one, else the setting;
        never below the fallback threshold."""
        entry = self.labels.get(label)
        if not entry.archive:
            return None
        head_value = (getattr(self.head, "thresholds", None) or {}).get("archive")
        value = entry.archive_confidence if entry.archive_confidence is not None else (
            float(head_value) if head_value is not None else self.archive_threshold_default)
        return max(float(value), self.scoring.threshold)

    def embed(self, text: str) -> np.ndarray:
        if self.batcher is not None:
            return self.batcher.encode_one(text)
        return self.encoder.encode([text])[0]


def context_of(runtime: Any) -> LabelerContext:
    """The LabelerContext a node runs with; anything else is a programming error that names the fix."""
    ctx = getattr(runtime, "context", None)
    if not isinstance(ctx, LabelerContext):
        raise TypeError(
            f"the inference graph needs a LabelerContext as its run context, got {type(ctx).__name__}: "
            "invoke it with context=build_context(settings), or compile graph.app's entry for hosts that pass none"
        )
    return ctx
