"""The model bundle: the trained head (`LinearHead`) and what is promoted with it, its label vectors,
thresholds, metrics, important head and reranker spec, and its files.

Artifact format `labelrouter.head/v1` (nothing in it can execute code on load):

    <dir>/head.json             metadata: format, kind, version, labels (output order), embedder name and
                                version, dim, temperature, pull, thresholds, metrics, created_at
    <dir>/weights.safetensors   tensors `W` (labels × dim, float32) and `b` (labels,)
    <dir>/lexicon.json          optional: the lexical features' terms, in column order (a JSON list)

Kind `linear-softmax`: p = softmax((x·Wᵀ + f·W_lexᵀ + b) / temperature) over the head's labels, where x is
the message vector and f its lexical features (`models.lexicon`: L2-normalised TF-IDF of words, bigrams,
subject and address tokens; tensors `W_lex` (labels × terms) and `idf` (terms,), with `lexicon.json`).
Without a lexicon the head sees the vector only. The head weight of label l is p_l ** pull, where `pull` in
[0, 1] is fitted on validation (`training.head.fit_pull`): a head that knows little (a few examples per
label) gets a small pull, its weights near 1.0, so the router decides; a strong one pulls with its full
probability. Optional tensor `counts`: the (kind-weighted) examples each label was fit on.
Optional tensors `important_W` (1 × dim) and `important_b` (1,): the "important" head, a logistic
regression on the message vector for Gmail's IMPORTANT flag. Optional tensor `label_vectors` (m × dim, rows named by `label_vector_labels` in head.json): retrieval
vectors refreshed from each label's examples at training time; the router uses them instead of the
description-only vectors for those labels while this head is current.
A config label the head has no output for (added after training) gets the mean of that message's other
head weights: it neither dominates nor becomes unroutable until the next training run.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
from safetensors.numpy import load as load_bytes
from safetensors.numpy import save as save_bytes

from labelrouter.errors import ModelArtifactError
from labelrouter.models.lexicon import Lexicon

HEAD_FORMAT = "labelrouter.head/v1"
HEAD_KINDS = ("linear-softmax",)


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
    # The "important" head: p(important) = σ(x·important_w + important_b), trained from Gmail's IMPORTANT
    # flags that nightly syncs record; None until there is enough of them.
    important_w: np.ndarray | None = None
    important_b: float = 0.0
    # Lexical evidence (None: the head sees the vector only).
    lexicon: Lexicon | None = None
    W_lex: np.ndarray | None = None  # (labels × terms)
    # How hard the head pulls against the router: head weight = p ** pull (fitted on validation).
    pull: float = 1.0
    counts: np.ndarray | None = None  # (labels,) training examples per label (kind-weighted)
    rerank: RerankSpec | None = None  # the bundle's cross-encoder reranker, when it has one

    def __post_init__(self) -> None:
        self._col = {name: i for i, name in enumerate(self.labels)}

    def logits(self, embeddings: np.ndarray, documents: list[str] | None = None) -> np.ndarray:
        """Before the temperature: x·Wᵀ + f·W_lexᵀ + b. Without documents the lexical part is left out
        (e.g. a stored message whose text retention has expired)."""
        logits = np.atleast_2d(embeddings).astype(np.float32) @ self.W.T + self.b
        if self.lexicon is not None and self.W_lex is not None and documents is not None and len(self.lexicon):
            logits = logits + np.asarray(self.lexicon.transform(documents) @ self.W_lex.T)
        return logits

    def probabilities(self, embeddings: np.ndarray, documents: list[str] | None = None) -> np.ndarray:
        """softmax(logits / temperature) over the head's labels, in `self.labels` order."""
        logits = self.logits(embeddings, documents) / self.temperature
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        probs /= probs.sum(axis=1, keepdims=True)
        return probs

    def weights(self, embeddings: np.ndarray, labels: list[str],
                documents: list[str] | None = None) -> np.ndarray:
        probs = self.probabilities(embeddings, documents)
        if self.pull != 1.0:
            probs = probs ** self.pull
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

    def evidence(self, document: str, label: str, top: int = 5) -> list[tuple[str, float]]:
        """Each feature's pull toward `label` against the average label (tf-idf × (w_label − mean w)),
        the `top` strongest positive ones."""
        i = self._col.get(label)
        if i is None or self.lexicon is None or self.W_lex is None or not len(self.lexicon):
            return []
        row = self.lexicon.transform([document])
        cols, values = row.indices, row.data
        if not len(cols):
            return []
        toward = values * (self.W_lex[i, cols] - self.W_lex[:, cols].mean(axis=0)) / self.temperature
        order = np.argsort(-toward)[:top]
        return [(self.lexicon.terms[cols[j]], round(float(toward[j]), 4)) for j in order if toward[j] > 0]

    def important_probability(self, embeddings: np.ndarray) -> np.ndarray | None:
        if self.important_w is None:
            return None
        logits = np.atleast_2d(embeddings).astype(np.float32) @ self.important_w + self.important_b
        return 1.0 / (1.0 + np.exp(-logits))

    def to_files(self) -> dict[str, bytes]:
        """The artifact's files by name: `head.json` and `weights.safetensors`."""
        tensors = {"W": np.ascontiguousarray(self.W, dtype=np.float32),
                   "b": np.ascontiguousarray(self.b, dtype=np.float32)}
        if self.label_vectors:
            tensors["label_vectors"] = np.ascontiguousarray(np.vstack(list(self.label_vectors.values())),
                                                            dtype=np.float32)
        if self.important_w is not None:
            tensors["important_W"] = np.ascontiguousarray(self.important_w.reshape(1, -1), dtype=np.float32)
            tensors["important_b"] = np.array([self.important_b], dtype=np.float32)
        files = {}
        if self.lexicon is not None and self.W_lex is not None:
            tensors["W_lex"] = np.ascontiguousarray(self.W_lex, dtype=np.float32)
            tensors["idf"] = np.ascontiguousarray(self.lexicon.idf, dtype=np.float32)
            files["lexicon.json"] = json.dumps(self.lexicon.terms, ensure_ascii=False).encode("utf-8")
        if self.counts is not None:
            tensors["counts"] = np.ascontiguousarray(self.counts, dtype=np.float32)
        meta = {
            "format": HEAD_FORMAT, "kind": "linear-softmax", "version": self.version, "labels": self.labels,
            "embedder": self.embedder, "dim": int(self.W.shape[1]), "temperature": self.temperature,
            "thresholds": self.thresholds, "metrics": self.metrics, "created_at": self.created_at,
            "label_vector_labels": list(self.label_vectors), "pull": self.pull,
        }
        if self.rerank is not None:
            meta["rerank"] = self.rerank.model_dump()
        return {"head.json": (json.dumps(meta, ensure_ascii=False, indent=2) + "\n").encode("utf-8"),
                "weights.safetensors": save_bytes(tensors), **files}

    def save(self, directory: Path) -> None:
        """Write the artifact's files into a directory (the registry stores bundles; this is for export)."""
        directory.mkdir(parents=True, exist_ok=True)
        for name, data in self.to_files().items():
            (directory / name).write_bytes(data)


class RerankSpec(BaseModel):
    """The cross-encoder a bundle reranks with (`models.reranker`), stored in the model registry beside
    the encoders, and how its logits become router weights: the k best labels by router × head are
    rescored, router weight = 100 · σ(a · logit + b) (a and b fitted on validation)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: StrictStr = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._+-]*@[A-Za-z0-9]+$", max_length=128)
    k: StrictInt = Field(ge=2, le=50)
    a: StrictFloat | StrictInt
    b: StrictFloat | StrictInt

    @field_validator("a", "b")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        return float(value)


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
    pull: StrictFloat | StrictInt = 1.0
    rerank: RerankSpec | None = None

    @field_validator("pull")
    @classmethod
    def _pull(cls, value: float) -> float:
        if not math.isfinite(value) or not 0 <= value <= 1:
            raise ValueError("pull must be a number between 0 and 1")
        return float(value)

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
        for name in ("fallback", "archive", "target_precision", "min_coverage"):
            if name in value and not 0 <= value[name] <= 1:
                raise ValueError(f"threshold {name!r} must be between 0 and 1")
        for name in ("fallback_margin", "silver_margin"):  # final-score points
            if name in value and not 0 <= value[name] <= 100:
                raise ValueError(f"threshold {name!r} must be between 0 and 100")
        if "fallback" in value and "fallback_margin" in value:
            raise ValueError("thresholds hold one fallback rule: 'fallback' (confidence) or 'fallback_margin'")
        return {k: float(v) for k, v in value.items()}


_TYPE_TAGS = {"float", "int", "str", "bool", "list", "dict"}


def parse_head_meta(data: bytes, source: str) -> HeadMeta:
    """`head.json` bytes, validated; every problem is a ModelArtifactError naming `source`."""
    try:
        decoded = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelArtifactError(f"head artifact {source}: unreadable ({exc})") from None
    if not isinstance(decoded, dict):
        raise ModelArtifactError(f"{source}: not a {HEAD_FORMAT} artifact (format=None)")
    try:
        return HeadMeta.model_validate(decoded)
    except ValidationError as exc:
        first = exc.errors(include_input=False)[0]
        # Union members show up in the location ('temperature.float'); the field path is what helps.
        where = ".".join(str(p) for p in first["loc"] if str(p) not in _TYPE_TAGS and "[" not in str(p))
        if first["type"] == "value_error":  # our own checks say what is wrong in a sentence
            message = str(first["msg"]).removeprefix("Value error, ")
        else:
            message = f"field {where!r}: {first['msg']}"
        raise ModelArtifactError(f"{source}: {message}") from None


def read_head_meta(directory: Path) -> HeadMeta:
    meta_path = directory / "head.json"
    try:
        data = meta_path.read_bytes()
    except FileNotFoundError:
        raise ModelArtifactError(f"head artifact {directory}: head.json is missing") from None
    except OSError as exc:
        raise ModelArtifactError(f"head artifact {meta_path}: unreadable ({exc})") from None
    return parse_head_meta(data, str(meta_path))


def head_from_files(files: dict[str, bytes], source: str, *, embedder: str, dim: int) -> LinearHead:
    """A head from its artifact files; every problem is a ModelArtifactError naming `source`."""
    if "head.json" not in files:
        raise ModelArtifactError(f"head artifact {source}: head.json is missing")
    meta_path = f"{source}/head.json"
    meta = parse_head_meta(files["head.json"], meta_path)
    labels = meta.labels
    if meta.embedder != embedder:
        raise ModelArtifactError(
            f"{meta_path}: head was trained on embeddings of {meta.embedder!r}, but the encoder is "
            f"{embedder!r}; retrain the head or roll back the encoder"
        )
    try:
        tensors = load_bytes(files["weights.safetensors"])
    except KeyError:
        raise ModelArtifactError(f"head artifact {source}: weights.safetensors is missing") from None
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelArtifactError(f"head artifact {source}: weights.safetensors unreadable ({exc})") from None
    W, b = tensors.get("W"), tensors.get("b")
    if W is None or b is None or W.shape != (len(labels), dim) or b.shape != (len(labels),):
        raise ModelArtifactError(
            f"head artifact {source}: expected W {(len(labels), dim)} and b {(len(labels),)}, got "
            f"{None if W is None else W.shape} and {None if b is None else b.shape}"
        )
    if not (np.isfinite(W).all() and np.isfinite(b).all()):
        raise ModelArtifactError(f"head artifact {source}: weights contain NaN or infinity")
    vector_labels = meta.label_vector_labels
    vectors = tensors.get("label_vectors")
    malformed = vectors is None or vectors.shape != (len(vector_labels), dim) or not np.isfinite(vectors).all()
    if (vector_labels or vectors is not None) and malformed:
        raise ModelArtifactError(
            f"head artifact {source}: label_vectors must be {(len(vector_labels), dim)} finite values, got "
            f"{None if vectors is None else vectors.shape}"
        )
    label_vectors = {name: vectors[i] for i, name in enumerate(vector_labels)} if vectors is not None else {}
    important_w, important_b = tensors.get("important_W"), tensors.get("important_b")
    if (important_w is None) != (important_b is None) or (important_w is not None and (
            important_w.shape != (1, dim) or important_b.shape != (1,)  # type: ignore[union-attr]
            or not (np.isfinite(important_w).all() and np.isfinite(important_b).all()))):
        raise ModelArtifactError(f"head artifact {source}: the important head must be important_W (1, {dim}) "
                                 "and important_b (1,), finite")
    lexicon, W_lex = _lexicon(files, tensors, source, len(labels))
    counts = tensors.get("counts")
    if counts is not None and (counts.shape != (len(labels),) or not np.isfinite(counts).all() or (counts < 0).any()):
        raise ModelArtifactError(f"head artifact {source}: counts must be {(len(labels),)} finite values ≥ 0")
    return LinearHead(
        labels=labels, W=W.astype(np.float32), b=b.astype(np.float32), version=meta.version,
        embedder=embedder, temperature=float(meta.temperature), thresholds=dict(meta.thresholds),
        metrics=dict(meta.metrics), created_at=meta.created_at, label_vectors=label_vectors,
        important_w=important_w[0].astype(np.float32) if important_w is not None else None,
        important_b=float(important_b[0]) if important_b is not None else 0.0,
        lexicon=lexicon, W_lex=W_lex, counts=counts.astype(np.float32) if counts is not None else None,
        pull=float(meta.pull), rerank=meta.rerank,
    )


def _lexicon(files: dict[str, bytes], tensors: dict[str, np.ndarray], source: str,
             n_labels: int) -> tuple[Lexicon | None, np.ndarray | None]:
    """The lexical part: `lexicon.json` (terms), `W_lex` and `idf`, all three or none."""
    W_lex, idf, data = tensors.get("W_lex"), tensors.get("idf"), files.get("lexicon.json")
    if W_lex is None and idf is None and data is None:
        return None, None
    try:
        terms = json.loads(data.decode("utf-8")) if data is not None else None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelArtifactError(f"head artifact {source}: lexicon.json unreadable ({exc})") from None
    if not isinstance(terms, list) or not set(map(type, terms)) <= {str} or W_lex is None or idf is None \
            or W_lex.shape != (n_labels, len(terms)) or idf.shape != (len(terms),) \
            or not (np.isfinite(W_lex).all() and np.isfinite(idf).all()):
        raise ModelArtifactError(
            f"head artifact {source}: the lexical part must be lexicon.json (a list of terms), W_lex (labels × "
            f"terms) and idf (terms,), finite; got {None if W_lex is None else W_lex.shape} and "
            f"{None if idf is None else idf.shape} for {len(terms) if isinstance(terms, list) else None} terms")
    return Lexicon(terms, idf.astype(np.float32)), W_lex.astype(np.float32)


def load_head(directory: Path, *, embedder: str, dim: int) -> LinearHead:
    """A head artifact exported to a directory (`LinearHead.save`)."""
    files = {}
    for name in ("head.json", "weights.safetensors", "lexicon.json"):
        try:
            files[name] = (directory / name).read_bytes()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise ModelArtifactError(f"head artifact {directory}: {name} unreadable ({exc})") from None
    return head_from_files(files, str(directory), embedder=embedder, dim=dim)
