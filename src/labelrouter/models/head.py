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
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
)
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from labelrouter.errors import ModelArtifactError

HEAD_FORMAT = "labelrouter.head/v1"
HEAD_KINDS = ("linear-softmax",)


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

    def weights(self, embeddings: np.ndarray, labels: list[str]) -> np.ndarray:
        """(n, dim) embeddings → (n, len(labels)) weights in [0, 1], columns in `labels` order."""


class ColdStartHead:
    """Before any training: 1.0 for every label, so the final score is the router weight."""

    version = "cold-start"

    @property
    def thresholds(self) -> dict[str, float]:
        return {}  # the settings' fallback and archive thresholds apply

    @property
    def metrics(self) -> dict[str, Any]:
        return {}

    @property
    def label_vectors(self) -> dict[str, np.ndarray]:
        return {}  # descriptions only

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


class HeadMeta(BaseModel):
    """`head.json`, validated field by field: a wrong type is a clear error, never a crash later."""

    model_config = ConfigDict(extra="ignore")

    format: str
    kind: str
    version: str = ""
    labels: list[StrictStr] = Field(min_length=1)
    embedder: StrictStr
    dim: StrictInt | None = None
    temperature: StrictFloat | StrictInt = 1.0
    thresholds: dict[StrictStr, StrictFloat | StrictInt] = Field(default_factory=dict)
    metrics: dict[StrictStr, Any] = Field(default_factory=dict)
    created_at: StrictStr = ""
    label_vector_labels: list[StrictStr] = Field(default_factory=list)

    @field_validator("format")
    @classmethod
    def _format(cls, value: str) -> str:
        if value != HEAD_FORMAT:
            raise ValueError(f"not a {HEAD_FORMAT} artifact (format={value!r})")
        return value

    @field_validator("kind")
    @classmethod
    def _kind(cls, value: str) -> str:
        if value not in HEAD_KINDS:
            raise ValueError(f"unknown head kind {value!r}")
        return value

    @field_validator("temperature")
    @classmethod
    def _temperature(cls, value: float) -> float:
        if not math.isfinite(value) or value <= 0:
            raise ValueError("temperature must be a positive number")
        return float(value)

    @field_validator("thresholds")
    @classmethod
    def _thresholds(cls, value: dict[str, float]) -> dict[str, float]:
        if not all(math.isfinite(v) for v in value.values()):
            raise ValueError("thresholds must be finite numbers")
        for name in ("fallback", "archive", "target_precision"):
            if name in value and not 0 <= value[name] <= 1:
                raise ValueError(f"threshold {name!r} must be between 0 and 1")
        return {k: float(v) for k, v in value.items()}


_TYPE_TAGS = {"float", "int", "str", "bool", "list", "dict"}


def read_head_meta(directory: Path) -> HeadMeta:
    meta_path = directory / "head.json"
    try:
        data = json.loads(meta_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelArtifactError(f"head artifact {directory}: head.json is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelArtifactError(f"head artifact {meta_path}: unreadable ({exc})") from None
    if not isinstance(data, dict):
        raise ModelArtifactError(f"{meta_path}: not a {HEAD_FORMAT} artifact (format=None)")
    try:
        return HeadMeta.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_input=False)[0]
        # Union members show up in the location ('temperature.float'); the field path is what helps.
        where = ".".join(str(p) for p in first["loc"] if str(p) not in _TYPE_TAGS and "[" not in str(p))
        if first["type"] == "value_error":  # our own checks say what is wrong in a sentence
            message = str(first["msg"]).removeprefix("Value error, ")
        else:
            message = f"field {where!r}: {first['msg']}"
        raise ModelArtifactError(f"{meta_path}: {message}") from None


def load_head(directory: Path, *, embedder: str, dim: int) -> LinearHead:
    """Load and check a head artifact; every problem is a ModelArtifactError naming the file."""
    meta_path = directory / "head.json"
    meta = read_head_meta(directory)
    labels = meta.labels
    if meta.embedder != embedder:
        raise ModelArtifactError(
            f"{meta_path}: head was trained on embeddings of {meta.embedder!r}, but the encoder is "
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
    vector_labels = meta.label_vector_labels
    vectors = tensors.get("label_vectors")
    malformed = vectors is None or vectors.shape != (len(vector_labels), dim) or not np.isfinite(vectors).all()
    if (vector_labels or vectors is not None) and malformed:
        raise ModelArtifactError(
            f"head artifact {directory}: label_vectors must be {(len(vector_labels), dim)} finite values, got "
            f"{None if vectors is None else vectors.shape}"
        )
    label_vectors = {name: vectors[i] for i, name in enumerate(vector_labels)} if vectors is not None else {}
    return LinearHead(
        labels=labels, W=W.astype(np.float32), b=b.astype(np.float32), version=meta.version,
        embedder=embedder, temperature=float(meta.temperature), thresholds=dict(meta.thresholds),
        metrics=dict(meta.metrics), created_at=meta.created_at, label_vectors=label_vectors,
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
        return self.head.thresholds

    @property
    def metrics(self) -> dict[str, Any]:
        return self.head.metrics

    @property
    def label_vectors(self) -> dict[str, np.ndarray]:
        return self.head.label_vectors

    def weights(self, embeddings: np.ndarray, labels: list[str]) -> np.ndarray:
        return self.head.weights(embeddings, labels)


# A version names a directory under <models_dir>/head/versions: one path component, nothing that climbs.
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")


def version_dir(models_dir: Path, version: object, source: Path) -> Path:
    """The directory of a head version, confined to `<models_dir>/head/versions`."""
    if not isinstance(version, str) or not _VERSION.fullmatch(version) or ".." in version:
        raise ModelArtifactError(f"{source}: {str(version)[:80]!r} is not a head version name")
    base = (models_dir / "head" / "versions").resolve()
    target = (base / version).resolve()
    if not target.is_relative_to(base):
        raise ModelArtifactError(f"{source}: head version {version!r} points outside {base}")
    return target


def load_current_head(models_dir: Path, *, embedder: str, dim: int) -> Head:
    """The promoted head (`<models_dir>/head/current.json` names its version), or the cold-start head."""
    pointer = models_dir / "head" / "current.json"
    if not pointer.exists():
        return ColdStartHead()
    try:
        version = json.loads(pointer.read_text(encoding="utf-8"))["version"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelArtifactError(f"{pointer}: unreadable pointer to the current head ({exc}); "
                                 "`labelrouter models rollback` rewrites it") from None
    try:
        return load_head(version_dir(models_dir, version, pointer), embedder=embedder, dim=dim)
    except ModelArtifactError as exc:
        raise ModelArtifactError(f"{exc}; `labelrouter models rollback` returns to the previous head") from None
