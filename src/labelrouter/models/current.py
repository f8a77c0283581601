"""The served head: the promoted one, reloaded when the registry's pointer moves."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from labelrouter.errors import ModelArtifactError
from labelrouter.models.head import Head
from labelrouter.models.registry import ModelRegistry

log = logging.getLogger(__name__)


class CurrentHead:
    """The promoted head, reloaded when the pointer changes, so a long-running process picks up a
    promotion (or a rollback) without a restart. The pointer is checked at most every `check_every_s`.
    A new version that fails to load is reported once and the head already in use stays."""

    def __init__(self, registry: ModelRegistry, *, embedder: str, dim: int, check_every_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic):
        self.registry, self.embedder, self.dim = registry, embedder, dim
        self.check_every_s, self.clock = check_every_s, clock
        self._stamp = registry.stamp()
        self._head: Head = registry.current_head(embedder=embedder, dim=dim)
        self._checked = clock()

    def _refresh(self) -> None:
        now = self.clock()
        if now - self._checked < self.check_every_s:
            return
        self._checked = now
        stamp = self.registry.stamp()
        if stamp == self._stamp:
            return
        self._stamp = stamp
        try:
            self._head = self.registry.current_head(embedder=self.embedder, dim=self.dim)
        except ModelArtifactError as exc:
            log.error("keeping model %s: %s", self._head.version, exc)

    @property
    def head(self) -> Head:
        self._refresh()
        return self._head

    @property
    def version(self) -> str:
        return self.head.version

    @property
    def thresholds(self) -> dict[str, float]:
        return self.head.thresholds

    @property
    def metrics(self) -> dict[str, Any]:
        return self.head.metrics

    @property
    def label_vectors(self) -> dict[str, np.ndarray]:
        return self.head.label_vectors

    @property
    def rerank(self) -> Any:
        return self.head.rerank

    def weights(self, embeddings: np.ndarray, labels: list[str],
                documents: list[str] | None = None) -> np.ndarray:
        return self.head.weights(embeddings, labels, documents)

    def evidence(self, document: str, label: str, top: int = 5) -> list[tuple[str, float]]:
        return self.head.evidence(document, label, top)

    def important_probability(self, embeddings: np.ndarray) -> np.ndarray | None:
        return self.head.important_probability(embeddings)
