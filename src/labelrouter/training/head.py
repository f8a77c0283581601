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
