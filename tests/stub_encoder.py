"""A stub encoder for the fast lane: hashed word and word-pair counts, L2-normalised, 384 dimensions.

Deterministic and instant, and close enough to an embedding for routing tests: texts that share words
have a positive cosine, unrelated texts about zero. Tests that need the real model's semantics are
marked `slow` and use the session's real encoder instead.
"""

from __future__ import annotations

import hashlib
import re

import numpy as np

WORD = re.compile(r"[a-z0-9]+")


class StubEncoder:
    name = "stub-hashing"
    version = "stub-hashing@1"

    def __init__(self, dim: int = 384):
        self.dim = dim

    def _vector(self, text: str) -> np.ndarray:
        words = WORD.findall(text.lower())
        vector = np.zeros(self.dim, dtype=np.float32)
        for token in words + [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]:
            digest = hashlib.blake2b(token.encode(), digest_size=8).digest()
            bucket = int.from_bytes(digest[:4], "little") % self.dim
            vector[bucket] += 1.0 if digest[4] & 1 else -1.0
        norm = float(np.linalg.norm(vector))
        return vector / norm if norm else vector

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.vstack([self._vector(t) for t in texts]).astype(np.float32)
