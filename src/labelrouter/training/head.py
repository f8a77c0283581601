"""Training the head: multinomial logistic regression on stored embeddings → a `linear-softmax` head.

Softmax logistic regression computes exactly what `LinearHead.weights` evaluates (softmax(x·Wᵀ + b)), so
the fitted coefficients are the artifact. Labels with no training rows get no output: at inference they
receive the mean of the other labels' head weights for the message (see `LinearHead.weights`), so they
stay routable from their description without winning everything.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from labelrouter.errors import LabelRouterError
from labelrouter.models.head import LinearHead
from labelrouter.models.label_index import LabelIndex


def train_linear_head(
    X: np.ndarray,
    y: list[str],
    *,
    embedder: str,
    version: str,
    sample_weight: np.ndarray | None = None,
    label_order: list[str] | None = None,
    C: float = 10.0,
    max_iter: int = 1000,
) -> LinearHead:
    """Fit on (n, dim) embeddings and their label names. `label_order` fixes the head's output order."""
    from sklearn.linear_model import LogisticRegression

    classes = [name for name in (label_order or sorted(set(y))) if name in set(y)]
    if len(classes) < 2:
        raise LabelRouterError(f"a head needs examples of at least 2 labels, got {len(classes)}")
    index = {name: i for i, name in enumerate(classes)}
    targets = np.array([index[name] for name in y])
    model = LogisticRegression(C=C, max_iter=max_iter)
    model.fit(X.astype(np.float32), targets, sample_weight=sample_weight)
    # Targets are 0..K-1 in `classes` order and sklearn sorts classes_, so rows already follow `classes`.
    coef, intercept = model.coef_.astype(np.float32), model.intercept_.astype(np.float32)
    if len(classes) == 2:  # binary LR has one row: p(1) = σ(w·x + b) = softmax([0, w·x + b])[1]
        coef = np.vstack([np.zeros_like(coef), coef])
        intercept = np.array([0.0, intercept[0]], dtype=np.float32)
    return LinearHead(
        labels=classes, W=coef, b=intercept, version=version, embedder=embedder,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def refresh_label_vectors(index: LabelIndex, X: np.ndarray, y: list[str], *, prior: float = 4.0) -> dict[str, np.ndarray]:
    """A retrieval vector per label with examples: its description vector blended with its examples'
    centroid, weight of the description = prior / (prior + n). With a few examples the description still
    counts; with many, the examples decide, so a label whose name says little (`misc2`) is retrieved once
    mail has been filed under it. Labels without examples keep their description vector."""
    labels = np.array(y)
    vectors = {}
    for name in sorted(set(y)):
        if name not in index.labels:
            continue
        rows = X[labels == name]
        centroid = rows.mean(axis=0)
        centroid /= np.linalg.norm(centroid) or 1.0
        alpha = prior / (prior + len(rows))
        blended = alpha * index.vectors[index.labels.index(name)] + (1 - alpha) * centroid
        vectors[name] = (blended / (np.linalg.norm(blended) or 1.0)).astype(np.float32)
    return vectors


def train_important(X: np.ndarray, important: np.ndarray, *, C: float = 1.0) -> tuple[np.ndarray, float]:
    """Logistic regression for Gmail's IMPORTANT flag on message vectors (classes balanced: important mail
    is usually the minority). Returns (w, b) with p = σ(x·w + b)."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=C, max_iter=1000, class_weight="balanced")
    model.fit(X.astype(np.float32), important.astype(int))
    return model.coef_[0].astype(np.float32), float(model.intercept_[0])


def balanced_accuracy(probability: np.ndarray, important: np.ndarray) -> float:
    """Mean of the recall on important and on not-important messages at p ≥ 0.5."""
    predicted = probability >= 0.5
    truth = important.astype(bool)
    recalls = [float(np.mean(predicted[truth == cls] == cls)) for cls in (True, False) if (truth == cls).any()]
    return float(np.mean(recalls)) if recalls else 0.0
