"""Run dependencies of the inference graph, handed to nodes through `runtime.context`.

Beside the state, not inside `graph/`: nodes import this module, never the graph modules that import the
nodes. `context_of(runtime)` is how a node gets its dependencies; a run without a `LabelerContext` is an
error, not a silent fallback (only the `langgraph.json` entry builds one from the environment, in
`graph/app.py`). Builders from settings are in `labelrouter.graph.wiring`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, TypedDict

import numpy as np

from labelrouter.labels import LabelSet
from labelrouter.mail.mailbox import Mailbox
from labelrouter.models.batching import MicroBatcher
from labelrouter.models.encoder import Encoder
from labelrouter.models.head import Head
from labelrouter.models.router import Router
from labelrouter.models.scoring import Scores
from labelrouter.store.base import Store
from labelrouter.summarize import Summarizer

Mode = Literal["apply", "dry-run", "decide", "shadow"]


class Routed(NamedTuple):
    """One message's vector and where its scores are: row `row` of a batch's `scores`."""

    vector: np.ndarray
    scores: Scores
    row: int


class ServedContext(TypedDict, total=False):
    """The run context a LangGraph server passes to the graphs it serves (`graph/app.py`): nothing is read
    from it. A server builds each run's context from a JSON `context` with the graph's context schema; with
    a dataclass of dependencies that fails before any node runs, so served graphs declare this mapping,
    which is passed through as it is, and their nodes use the server's dependencies instead (built once
    from its environment)."""


@dataclass
class LabelerContext:
    router: Router  # labels, label vectors, head, scoring parameters: everything that decides a label
    encoder: Encoder
    summarizer: Summarizer
    # decide: explain only; dry-run: say what apply would do; apply: do it and persist; shadow: persist the
    # decision without touching the mailbox (trust before go-live: docs/feedback.md)
    mode: Mode = "decide"
    mailbox: Mailbox | None = None
    mailbox_ids: dict[str, str] = field(default_factory=dict)  # label name → mailbox label id
    # Mailbox label ids that count as "ours": this config's and every label labelrouter created before.
    known_label_ids: set[str] = field(default_factory=set)
    store: Store | None = None
    batcher: MicroBatcher[tuple[str, str], Routed] | None = None
    # The settings the context was built from, for extensions that need their own configuration.
    settings: Any = None

    @property
    def labels(self) -> LabelSet:
        return self.router.labels

    @property
    def head(self) -> Head:
        return self.router.head

    @property
    def model_version(self) -> str:
        return self.router.model_version

    def archive_threshold(self, label: str) -> float | None:
        return self.router.archive_threshold(label)

    def route(self, text: str, document: str) -> Routed:
        """One message's vector and scores: through the chunk's batcher when the labeler set one, so the
        chunk is encoded in one forward pass and scored in one call."""
        if self.batcher is not None:
            return self.batcher.call((text, document))
        return self.embed_and_score([(text, document)])[0]

    def not_routing(self) -> None:
        """This message will not be routed (a rule decided it, or it has no content): its chunk's batch
        need not wait for it."""
        if self.batcher is not None:
            self.batcher.withdraw()

    def embed_and_score(self, items: list[tuple[str, str]]) -> list[Routed | BaseException]:
        """(embedded text, document) pairs → each one's vector and its row of the batch's scores. Scoring
        that fails for the batch is retried message by message, so one bad message fails alone."""
        texts = [text for text, _ in items]
        vectors = self.encoder.encode(texts)

        def scored(rows: list[int]) -> list[Routed | BaseException]:
            scores = self.router.score(vectors[rows], [items[i][1] for i in rows], [texts[i] for i in rows])
            return [Routed(vectors[i], scores, k) for k, i in enumerate(rows)]

        try:
            return scored(list(range(len(items))))
        except Exception:
            if len(items) == 1:
                raise
        results: list[Routed | BaseException] = []
        for i in range(len(items)):
            try:
                results.extend(scored([i]))
            except Exception as exc:  # noqa: BLE001 - this message's failure, raised to its caller alone
                results.append(exc)
        return results


def context_of(runtime: Any) -> LabelerContext:
    """The LabelerContext a node runs with; anything else is a programming error that names the fix."""
    ctx = getattr(runtime, "context", None)
    if not isinstance(ctx, LabelerContext):
        raise TypeError(
            f"the inference graph needs a LabelerContext as its run context, got {type(ctx).__name__}: "
            "invoke it with context=build_context(settings), or compile graph.app's entry for hosts that pass none"
        )
    return ctx
