"""Label vectors the router retrieves with: one per label, embedded from its name path and description."""

from __future__ import annotations

import numpy as np

from labelrouter.labels import LabelSet
from labelrouter.models.encoder import Encoder


class LabelIndex:
    def __init__(self, labels: LabelSet, vectors: np.ndarray, encoder_version: str):
        if vectors.shape[0] != len(labels):
            raise ValueError(f"{vectors.shape[0]} label vectors for {len(labels)} labels")
        self.labels = labels
        self.vectors = vectors.astype(np.float32)
        self.encoder_version = encoder_version
        self.routable = np.array([label.name != labels.fallback for label in labels.labels], dtype=bool)

    @classmethod
    def build(cls, labels: LabelSet, encoder: Encoder) -> LabelIndex:
        return cls(labels, encoder.encode(labels.retrieval_texts()), encoder.version)

    def with_vectors(self, overrides: dict[str, np.ndarray]) -> LabelIndex:
        """This index with some labels' vectors replaced (refreshed from their examples by training)."""
        if not overrides:
            return self
        vectors = self.vectors.copy()
        for name, vector in overrides.items():
            if name in self.labels:
                vectors[self.labels.index(name)] = vector
        return LabelIndex(self.labels, vectors, self.encoder_version)

    def similarities(self, embeddings: np.ndarray) -> np.ndarray:
        """Cosine similarities (vectors are L2-normalised): (n, dim) → (n, labels)."""
        return np.atleast_2d(embeddings) @ self.vectors.T
