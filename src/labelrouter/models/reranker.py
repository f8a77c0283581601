"""The cross-encoder reranker at inference: scores (message, label text) pairs for each message's
retrieved candidates (`training.cross_encoder` trains it). Loaded from a safetensors model folder, offline.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

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


class Rerankers:
    """Cross-encoders by version, unpacked from the model registry (`EncoderStore`: they are stored as the
    fine-tuned encoders are) into `cache_dir` and loaded once each: the `Router`'s `reranker_for`. A
    promotion that brings another reranker is picked up at its first use; one that cannot be loaded fails
    the messages it would score, with the error and the way back (`labelrouter models rollback`)."""

    def __init__(self, store: Any, cache_dir: Path, *, device: str = "cpu", batch_size: int = 64):
        self.store, self.cache_dir, self.device, self.batch_size = store, Path(cache_dir), device, batch_size
        self._loaded: dict[str, CrossEncoderReranker] = {}
        self._lock = threading.Lock()

    def __call__(self, version: str) -> CrossEncoderReranker:
        with self._lock:  # a worker pool's threads load it once, not once each
            if version not in self._loaded:
                try:
                    path, _ = self.store.unpack(version, self.cache_dir)
                    self._loaded[version] = CrossEncoderReranker(path, device=self.device, batch_size=self.batch_size)
                except ModelArtifactError as exc:
                    raise ModelArtifactError(f"reranker {version}: {exc}; `labelrouter models rollback` returns "
                                             "to the previous model") from None
            return self._loaded[version]
