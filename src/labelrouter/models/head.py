"""The head: per-label weights in [0, 1] learned from the user's corrections.

Artifact format `labelrouter.head/v1` (nothing in it can execute code on load):

    <dir>/head.json             metadata: format, kind, version, labels (output order), embedder name and
                                version, dim, temperature, thresholds, metrics, created_at
    <dir>/weights.safetensors   tensors `W` (labels × dim, float32) and `b` (labels,)

Kinds: `linear-softmax` — head weights = softmax((x·Wᵀ + b) / temperature) over the head's labels.
Optional tensor `label_vectors` (m × dim, rows named by `label_vector_labels` in head.json): retrieval
vectors refreshed from each label's examples at training time; the router uses them instead of the
description-only vectors for those labels while this head is current.
A config label the head has no output for (added after training) gets the mean of that message's other
head weights: it neither dominates nor becomes unroutable until the next training run.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from labelrouter.errors import ModelArtifactError

HEAD_FORMAT = "labelrouter.head/v1"
HEAD_KINDS = ("linear-softmax",)


class Head(Protocol):
    version: str

    def weights(self, embeddings: np.ndarray, labels: list[str]) -> np.ndarray:
        """(n, dim) embeddings → (n, len(labels)) weights in [0, 1], columns in `labels` order."""


class ColdStartHead:
    """Before any training: 1.0 for every label, so the final score is the router weight."""

    version = "cold-start"
    label_vectors: dict[str, np.ndarray] = {}  # noqa: RUF012 (read-only: descriptions only)

    def weights(self, embeddings: np.ndarray, labels: list[str]) -> np.ndarray:
        return np.ones((embeddings.shape[0], len(labels)), dtype=np.float32)


@dataclass
class LinearHead:
    labels: list[str]
    W: np.ndarray
    b: np.ndarray
    version: str
    embedder: str
    temperature: float = 1.0
    thresholds: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""
    label_vectors: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._col = {name: i for i, name in enumerate(self.labels)}

    def weights(self, embeddings: np.ndarray, labels: list[str]) -> np.ndarray:
        logits = (embeddings.astype(np.float32) @ self.W.T + self.b) / self.temperature
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        probs /= probs.sum(axis=1, keepdims=True)
        out = np.empty((embeddings.shape[0], len(labels)), dtype=np.float32)
        unseen = []
        for j, name in enumerate(labels):
            i = self._col.get(name)
            if i is None:
                unseen.append(j)
            else:
                out[:, j] = probs[:, i]
        if unseen:
            known = [j for j in range(len(labels)) if j not in set(unseen)]
            fill = out[:, known].mean(axis=1) if known else np.ones(embeddings.shape[0], dtype=np.float32)
            out[:, unseen] = fill[:, None]
        return np.clip(out, 0.0, 1.0)

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        tensors = {"W": np.ascontiguousarray(self.W, dtype=np.float32),
                   "b": np.ascontiguousarray(self.b, dtype=np.float32)}
        if self.label_vectors:
            tensors["label_vectors"] = np.ascontiguousarray(np.vstack(list(self.label_vectors.values())),
                                                            dtype=np.float32)
        save_file(tensors, str(directory / "weights.safetensors"))
        meta = {
            "format": HEAD_FORMAT, "kind": "linear-softmax", "version": self.version, "labels": self.labels,
            "embedder": self.embedder, "dim": int(self.W.shape[1]), "temperature": self.temperature,
            "thresholds": self.thresholds, "metrics": self.metrics, "created_at": self.created_at,
            "label_vector_labels": list(self.label_vectors),
        }
        (directory / "head.json").write_text(json.dumps(meta, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def load_head(directory: Path, *, embedder: str, dim: int) -> LinearHead:
    """Load and check a head artifact; every problem is a ModelArtifactError naming the file."""
    meta_path = directory / "head.json"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelArtifactError(f"head artifact {directory}: head.json is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelArtifactError(f"head artifact {meta_path}: unreadable ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != HEAD_FORMAT:
        raise ModelArtifactError(f"{meta_path}: not a {HEAD_FORMAT} artifact (format={meta.get('format') if isinstance(meta, dict) else None!r})")
    if meta.get("kind") not in HEAD_KINDS:
        raise ModelArtifactError(f"{meta_path}: unknown head kind {meta.get('kind')!r}")
    labels = meta.get("labels")
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
        raise ModelArtifactError(f"{meta_path}: 'labels' must be a non-empty list of names")
    if meta.get("embedder") != embedder:
        raise ModelArtifactError(
            f"{meta_path}: head was trained on embeddings of {meta.get('embedder')!r}, but the encoder is "
            f"{embedder!r}; retrain the head or roll back the encoder"
        )
    try:
        tensors = load_file(str(directory / "weights.safetensors"))
    except (FileNotFoundError, SafetensorError, OSError) as exc:
        raise ModelArtifactError(f"head artifact {directory}: weights.safetensors unreadable ({exc})") from None
    W, b = tensors.get("W"), tensors.get("b")
    if W is None or b is None or W.shape != (len(labels), dim) or b.shape != (len(labels),):
        raise ModelArtifactError(
            f"head artifact {directory}: expected W {(len(labels), dim)} and b {(len(labels),)}, got "
            f"{None if W is None else W.shape} and {None if b is None else b.shape}"
        )
    if not (np.isfinite(W).all() and np.isfinite(b).all()):
        raise ModelArtifactError(f"head artifact {directory}: weights contain NaN or infinity")
    vector_labels = meta.get("label_vector_labels") or []
    vectors = tensors.get("label_vectors")
    malformed = vectors is None or vectors.shape != (len(vector_labels), dim) or not np.isfinite(vectors).all()
    if (vector_labels or vectors is not None) and malformed:
        raise ModelArtifactError(
            f"head artifact {directory}: label_vectors must be {(len(vector_labels), dim)} finite values, got "
            f"{None if vectors is None else vectors.shape}"
        )
    label_vectors = {name: vectors[i] for i, name in enumerate(vector_labels)} if vectors is not None else {}
    temperature = float(meta.get("temperature", 1.0))
    if not math.isfinite(temperature) or temperature <= 0:
        raise ModelArtifactError(f"{meta_path}: temperature must be a positive number")
    return LinearHead(
        labels=labels, W=W.astype(np.float32), b=b.astype(np.float32), version=str(meta.get("version", "")),
        embedder=embedder, temperature=temperature, thresholds=dict(meta.get("thresholds") or {}),
        metrics=dict(meta.get("metrics") or {}), created_at=str(meta.get("created_at", "")),
        label_vectors=label_vectors,
    )


def _pointer_stamp(models_dir: Path) -> int | None:
    try:
        return (models_dir / "head" / "current.json").stat().st_mtime_ns
    except FileNotFoundError:
        return None


class CurrentHead:
    """The promoted head, reloaded when `current.json` changes, so a long-running process picks up a
    promotion (or a rollback) without a restart. The pointer is stat-ed at most every `check_every_s`."""

    def __init__(self, models_dir: Path, *, embedder: str, dim: int, check_every_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic):
        self.models_dir, self.embedder, self.dim = models_dir, embedder, dim
        self.check_every_s, self.clock = check_every_s, clock
        self._stamp = _pointer_stamp(models_dir)
        self._head: Head = load_current_head(models_dir, embedder=embedder, dim=dim)
        self._checked = clock()

    def _refresh(self) -> None:
        now = self.clock()
        if now - self._checked < self.check_every_s:
            return
        self._checked = now
        stamp = _pointer_stamp(self.models_dir)
        if stamp != self._stamp:
            # A broken new artifact raises here rather than silently keeping the old head.
            self._head = load_current_head(self.models_dir, embedder=self.embedder, dim=self.dim)
            self._stamp = stamp

    @property
    def head(self) -> Head:
        self._refresh()
        return self._head

    @property
    def version(self) -> str:
        return self.head.version

    @property
    def thresholds(self) -> dict[str, float]:
        return dict(getattr(self.head, "thresholds", {}) or {})

    @property
    def label_vectors(self) -> dict[str, np.ndarray]:
        return getattr(self.head, "label_vectors", {}) or {}

    def weights(self, embeddings: np.ndarray, labels: list[str]) -> np.ndarray:
        return self.head.weights(embeddings, labels)


def load_current_head(models_dir: Path, *, embedder: str, dim: int) -> Head:
    """The promoted head (`<models_dir>/head/current.json` names its version), or the cold-start head."""
    pointer = models_dir / "head" / "current.json"
    if not pointer.exists():
        return ColdStartHead()
    try:
        version = json.loads(pointer.read_text(encoding="utf-8"))["version"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelArtifactError(f"{pointer}: unreadable pointer to the current head ({exc})") from None
    return load_head(models_dir / "head" / "versions" / str(version), embedder=embedder, dim=dim)
