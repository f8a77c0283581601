"""The head: per-label weights in [0, 1] learned from the user's corrections, multiplied into the router's.

`Head` is what the router asks of one; `ColdStartHead` is the head before any training (1.0 for every
label, so the router decides). The trained head, with everything promoted beside it, is the model bundle
(`models.bundle.LinearHead`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from labelrouter.models.bundle import RerankSpec


class Head(Protocol):
    """Everything callers use of a head: its version, its per-label weights, the thresholds and metrics it
    was promoted with, and the label vectors it refreshed (empty when it brings none)."""

    @property
    def version(self) -> str: ...

    @property
    def thresholds(self) -> dict[str, float]: ...

    @property
    def metrics(self) -> dict[str, Any]: ...

    @property
    def label_vectors(self) -> dict[str, np.ndarray]: ...

    @property
    def rerank(self) -> RerankSpec | None:
        """The cross-encoder reranker the bundle brings (None: routing is retrieval × head)."""

    def weights(self, embeddings: np.ndarray, labels: list[str],
                documents: list[str] | None = None) -> np.ndarray:
        """(n, dim) embeddings (and the n messages' documents, `models.document`) → (n, len(labels))
        weights in [0, 1], columns in `labels` order."""

    def evidence(self, document: str, label: str, top: int = 5) -> list[tuple[str, float]]:
        """The lexical features of `document` that pulled most toward `label` (empty without a lexicon)."""

    def important_probability(self, embeddings: np.ndarray) -> np.ndarray | None:
        """(n, dim) → (n,) probability that the user marks the message important; None without a model."""


class ColdStartHead:
    """Before any training: 1.0 for every label, so the final score is the router weight."""

    version = "cold-start"
    rerank = None

    @property
    def thresholds(self) -> dict[str, float]:
        return {}  # the settings' fallback and archive thresholds apply

    @property
    def metrics(self) -> dict[str, Any]:
        return {}

    @property
    def label_vectors(self) -> dict[str, np.ndarray]:
        return {}  # descriptions only

    def important_probability(self, embeddings: np.ndarray) -> np.ndarray | None:
        return None

    def weights(self, embeddings: np.ndarray, labels: list[str],
                documents: list[str] | None = None) -> np.ndarray:
        return np.ones((embeddings.shape[0], len(labels)), dtype=np.float32)

    def evidence(self, document: str, label: str, top: int = 5) -> list[tuple[str, float]]:
        return []
