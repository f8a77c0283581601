"""Label vectors the router retrieves with: one per label, embedded from its name path and description.

Embedding a long label list is most of a cold start (10,000 labels: ~50 s here), so vectors are cached
per encoder version in `<cache_dir>/label-vectors/`, keyed by a hash of each label's retrieval text: a
changed description is re-embedded, everything else is read back. The cache is safetensors (nothing in it
executes); a damaged one is ignored and rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from pathlib import Path

import numpy as np
from safetensors.numpy import safe_open, save_file

from labelrouter.labels import LabelSet
from labelrouter.models.encoder import Encoder
from labelrouter.util.files import private_dir

log = logging.getLogger(__name__)
MAX_CACHED = 200_000  # vectors kept per encoder version (~300 MB at 384 dims would be far more than needed)


def _text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def _cache_file(cache_dir: Path, encoder_version: str) -> Path:
    return cache_dir / "label-vectors" / (re.sub(r"[^A-Za-z0-9._-]", "_", encoder_version) + ".safetensors")


def _read_cache(path: Path, dim: int) -> dict[str, np.ndarray]:
    try:
        with safe_open(str(path), framework="numpy") as fh:
            keys = json.loads((fh.metadata() or {}).get("keys", "[]"))
            vectors = fh.get_tensor("vectors")
    except FileNotFoundError:
        return {}
    except Exception as exc:  # noqa: BLE001 - a damaged cache is only a slower start
        log.warning("ignoring damaged label-vector cache %s: %s", path, exc)
        return {}
    if not isinstance(keys, list) or vectors.shape != (len(keys), dim) or not np.isfinite(vectors).all():
        log.warning("ignoring label-vector cache %s: it does not match this encoder", path)
        return {}
    return {str(k): vectors[i] for i, k in enumerate(keys)}


def _write_cache(path: Path, entries: dict[str, np.ndarray]) -> None:
    items = list(entries.items())[-MAX_CACHED:]
    private_dir(path.parent)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        save_file({"vectors": np.ascontiguousarray(np.vstack([v for _, v in items]), dtype=np.float32)}, str(tmp),
                  metadata={"keys": json.dumps([k for k, _ in items])})
        tmp.replace(path)
    except OSError as exc:  # a read-only home still labels, just without the cache
        log.warning("could not write label-vector cache %s: %s", path, exc)
        tmp.unlink(missing_ok=True)


def embed_label_texts(texts: list[str], encoder: Encoder, cache_dir: Path | None) -> np.ndarray:
    """Vectors for label texts, read from the cache where present, the rest embedded (and cached)."""
    if cache_dir is None or not texts:
        return encoder.encode(texts)
    path = _cache_file(cache_dir, encoder.version)
    cached = _read_cache(path, encoder.dim)
    keys = [_text_key(t) for t in texts]
    missing = sorted({k: i for i, k in enumerate(keys) if k not in cached}.values())
    if missing:
        fresh = encoder.encode([texts[i] for i in missing])
        cached.update({keys[i]: fresh[j] for j, i in enumerate(missing)})
        _write_cache(path, cached)
    return np.vstack([cached[k] for k in keys]).astype(np.float32)


class LabelIndex:
    def __init__(self, labels: LabelSet, vectors: np.ndarray, encoder_version: str):
        if vectors.shape[0] != len(labels):
            raise ValueError(f"{vectors.shape[0]} label vectors for {len(labels)} labels")
        self.labels = labels
        self.vectors = vectors.astype(np.float32)
        self.encoder_version = encoder_version
        self.routable = np.array([label.name != labels.fallback for label in labels.labels], dtype=bool)

    @classmethod
    def build(cls, labels: LabelSet, encoder: Encoder, *, cache_dir: Path | None = None) -> LabelIndex:
        return cls(labels, embed_label_texts(labels.retrieval_texts(), encoder, cache_dir), encoder.version)

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
