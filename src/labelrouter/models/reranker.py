"""The cross-encoder reranker at inference: scores (message, label text) pairs for each message's
retrieved candidates (`training.cross_encoder` trains it). Loaded from a safetensors model folder, offline.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from labelrouter.errors import ModelArtifactError
from labelrouter.labels import LabelSet
from labelrouter.models.encoder import model_fingerprint


class CrossEncoderReranker:
    def __init__(self, path: Path, *, device: str = "cpu", batch_size: int = 64, max_length: int = 160):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers.cross_encoder import CrossEncoder

        self.path = Path(path)
        self.version = f"rerank@{model_fingerprint(self.path)}"
        try:
            self.model = CrossEncoder(str(self.path), device=device, local_files_only=True, max_length=max_length)
        except Exception as exc:  # a damaged folder: one line, not a stack of HF internals
            raise ModelArtifactError(f"cannot load reranker from {self.path}: {type(exc).__name__}: {exc}") from None
        self.batch_size = batch_size
        self._texts: tuple[str, list[str]] | None = None

    def rerank(self, texts: list[str], candidates: np.ndarray, labels: LabelSet) -> np.ndarray:
        """(n,) message texts and (n, k) candidate label indices → (n, k) scores (logits: higher is better)."""
        candidates = np.atleast_2d(candidates)
        if not len(texts):
            return np.zeros(candidates.shape, dtype=np.float32)
        if self._texts is None or self._texts[0] != labels.fingerprint():
            self._texts = (labels.fingerprint(), labels.retrieval_texts())
        label_texts = self._texts[1]
        pairs = [(text, label_texts[int(c)]) for text, row in zip(texts, candidates, strict=True) for c in row]
        scores = self.model.predict(pairs, batch_size=self.batch_size, convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(scores, dtype=np.float32).reshape(candidates.shape)
