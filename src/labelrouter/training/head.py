"""Training the head → a `linear-softmax` head (`models.head`).

`train_hybrid_head` (what training uses): one linear model on the message vector *and* its lexical
features (`models.lexicon`), a one-vs-rest linear SVM — the model that wins text classification on long
mail and personal folders — whose decision values become per-label probabilities through a softmax with a
temperature fitted on held-out examples (`calibrate`). The vector is scaled by `dense_scale` before the
fit: both blocks are unit-norm, and at 0.5 the sparse block, with its many more weights, is not drowned.
The SVM sees the vector along its 192 main directions in the training set (`dense_basis`; the weights
are mapped back, so the artifact keeps the vector's full dimension): a quarter to two fifths less to
fit, −0.1 point of top-1 on 20newsgroups and clinc150.
`train_linear_head` is the earlier dense-only head (multinomial logistic regression on the vector), kept
for comparison in `eval`.

Labels with no training rows get no output: at inference they receive the mean of the other labels' head
weights for the message (see `LinearHead.weights`), so they stay routable from their description without
winning everything.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np

from labelrouter.errors import LabelRouterError
from labelrouter.models.analysis import prepare
from labelrouter.models.bundle import LinearHead
from labelrouter.models.label_index import LabelIndex
from labelrouter.models.lexicon import Lexicon
from labelrouter.training.ovr import fit_linear_svc

DENSE_SCALE = 0.5
# Chosen per mailbox on validation (`dense_scale_trials`); 2.0 is there for few examples of short text, where
# the SVM's regulariser holds the vector's weights back (docs/decisions/0002-dense-scale-trials.md).
DENSE_SCALES = (0.25, 0.5, 1.0, 2.0)
SELECT_AT_MOST = 4_000  # training examples the scale is chosen with: a choice, not the model, so a sample
SVM_C = 0.5
SVM_TOL = 1e-3
TRIAL_TOL = 1e-2  # scale trials choose, they are not the model (docs/decisions/0003-svm-tolerance.md)
DENSE_DIRECTIONS = 192  # of the message vector's, fed to the SVM (`dense_basis`)
PULLS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0)  # head weight = p ** pull; fitted on validation


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

    classes, targets = _classes(y, label_order)
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


def _classes(y: list[str], label_order: list[str] | None) -> tuple[list[str], np.ndarray]:
    classes = [name for name in (label_order or sorted(set(y))) if name in set(y)]
    if len(classes) < 2:
        raise LabelRouterError(f"a head needs examples of at least 2 labels, got {len(classes)}")
    index = {name: i for i, name in enumerate(classes)}
    return classes, np.array([index[name] for name in y])


def train_hybrid_head(
    X: np.ndarray,
    documents: list[str],
    y: list[str],
    *,
    embedder: str,
    version: str,
    sample_weight: np.ndarray | None = None,
    label_order: list[str] | None = None,
    C: float = SVM_C,
    dense_scale: float = DENSE_SCALE,
    max_features: int = 100_000,
    lexical: tuple[Lexicon, Any] | None = None,
    tol: float = SVM_TOL,
    jobs: int | None = None,
    dense_directions: int = DENSE_DIRECTIONS,
) -> LinearHead:
    """Fit on (n, dim) embeddings, the n messages' documents and their label names. The temperature is
    1.0 until `calibrate` sets it on held-out examples. `lexical`: the documents' lexicon and feature
    matrix when the caller already has them (`Lexicon.fit_transform` of the same documents): they do not
    depend on the scale, so the scale trials share one. `jobs`: processes the SVM fit may use
    (`training.ovr`; default: the cores this process may run on)."""
    from scipy import sparse

    classes, targets = _classes(y, label_order)
    lexicon, features_lex = lexical or Lexicon.fit_transform(documents, max_features=max_features)
    basis = dense_basis(X, dense_directions)
    dense = X.astype(np.float32) @ basis
    features = sparse.hstack([sparse.csr_matrix(dense * dense_scale), features_lex], format="csr")
    # tol 1e-3 rather than liblinear's 1e-4: fewer passes, the same decisions
    # (docs/decisions/0003-svm-tolerance.md).
    coef, intercept = fit_linear_svc(features, targets, len(classes), C=C, tol=tol, sample_weight=sample_weight,
                                     jobs=jobs)
    coef, intercept = coef.astype(np.float32), intercept.astype(np.float32)
    if len(classes) == 2:  # one row scores class 1; class 0 scores its negative
        coef, intercept = np.vstack([-coef, coef]), np.array([-intercept[0], intercept[0]], dtype=np.float32)
    dim = basis.shape[1]
    weights = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    counts = np.bincount(targets, weights=weights, minlength=len(classes)).astype(np.float32)
    return LinearHead(
        labels=classes, W=(coef[:, :dim] @ basis.T) * dense_scale, b=intercept, version=version, embedder=embedder,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"), lexicon=lexicon,
        W_lex=np.ascontiguousarray(coef[:, dim:]), counts=counts,
    )


def dense_basis(X: np.ndarray, directions: int = DENSE_DIRECTIONS) -> np.ndarray:
    """(dim, k): the `directions` orthonormal directions along which the training vectors vary most (the
    top eigenvectors of XᵀX), or the identity when they are no fewer than the vector's dimensions. The SVM
    sees the vectors' coordinates along them; the head's weights are mapped back (W = coef · basisᵀ), so
    the artifact and inference do not change. An SVM's weights lie in the span of its training vectors,
    so with fewer examples than directions nothing is lost; with many, the directions dropped carry little
    (on 20newsgroups and clinc150, 192 of MiniLM's 384: head top-1 −0.1 point) and the fit is a quarter to
    two fifths faster (the vector was two thirds of the SVM's nonzeros)."""
    dim = X.shape[1]
    if directions >= dim:
        return np.eye(dim, dtype=np.float32)
    X64 = X.astype(np.float64)
    _, vectors = np.linalg.eigh(X64.T @ X64)  # ascending eigenvalues
    return np.ascontiguousarray(vectors[:, ::-1][:, :directions], dtype=np.float32)


def dense_scale_trials(X: np.ndarray, documents: list[str], y: list[str], X_val: np.ndarray,
                       documents_val: list[str], y_val: list[str], *, sample_weight: np.ndarray | None = None,
                       label_order: list[str] | None = None, at_most: int = SELECT_AT_MOST,
                       embedder: str = "choice", version: str = "choice") -> tuple[float, LinearHead | None]:
    """(scale, head): the weight of the message vector against the lexical features that validation
    prefers — a head fit per scale in `DENSE_SCALES` on at most `at_most` training examples (a seeded
    sample), judged by its own top-1 on the validation examples; near-ties go to the default (below) — and,
    when the trials saw every training example, the chosen trial's head, which is the candidate itself
    (None otherwise, or when there was nothing to try). What mail looks like decides the scale: one-line
    requests are all meaning (clinc150: 2.0, +1.1 points over 0.5 at 1.0), long posts are words (20newsgroups:
    0.25, +1.4), a personal mailbox in between."""
    if len(set(y_val)) < 2 or len(set(y)) < 2:
        return DENSE_SCALE, None
    rows = np.arange(len(y))
    if len(rows) > at_most:
        rows = np.sort(np.random.default_rng(0).choice(rows, size=at_most, replace=False))
        if len({y[i] for i in rows}) < 2:
            return DENSE_SCALE, None
    sub_docs, sub_y = [documents[i] for i in rows], [y[i] for i in rows]
    weights = None if sample_weight is None else np.asarray(sample_weight)[rows]
    right, heads = {}, {}
    lexical = Lexicon.fit_transform(sub_docs)  # the same for every scale
    # A trial that may become the candidate is fit as the candidate would be; one on a sample only chooses.
    tol = SVM_TOL if len(rows) == len(y) else TRIAL_TOL
    for scale in DENSE_SCALES:
        head = heads[scale] = train_hybrid_head(X[rows], sub_docs, sub_y, embedder=embedder, version=version,
                                                sample_weight=weights, label_order=label_order, dense_scale=scale,
                                                lexical=lexical, tol=tol)
        known = [i for i, name in enumerate(y_val) if name in head.labels]
        predicted = head.logits(X_val[known], [documents_val[i] for i in known]).argmax(axis=1)
        right[scale] = np.array([head.labels[p] == y_val[i] for p, i in zip(predicted, known, strict=True)])
    scale = clear_winner(right, DENSE_SCALE)
    return scale, heads[scale] if len(rows) == len(y) else None


def clear_winner(right: dict[float, np.ndarray], default: float) -> float:
    """The setting whose validation decisions (`right`: setting → which examples it got right) are most
    often right — but the default unless the winner beats it by more than the standard error of the
    paired difference (the examples on which the two disagree), as for the pull. A live mailbox's
    validation is a few dozen of the current model's mistakes; there a near-tie is noise."""
    best = max(right, key=lambda setting: (right[setting].mean(), setting == default))
    margin = right[best].mean() - right[default].mean()
    return best if margin > paired_standard_error(right[best], right[default]) else default


def paired_standard_error(right_a: np.ndarray, right_b: np.ndarray) -> float:
    """The standard error of the difference in accuracy of two settings judged on the same examples:
    √(examples on which they disagree) / examples."""
    return float(np.sqrt(np.sum(right_a != right_b)) / max(1, len(right_a)))


def fit_head(router: Any, X: np.ndarray, documents: list[str], y: list[str], X_val: np.ndarray,
             documents_val: list[str], y_val: list[str], *, embedder: str, version: str,
             sample_weight: np.ndarray | None = None, scale: float | None = None) -> LinearHead:
    """A candidate head as a training run fits it, in one place for the training graph and `eval`: the
    dense scale chosen on validation (unless `scale` is given: the one an earlier run chose), the head fit
    on the training examples with its label vectors refreshed, then its temperature and its pull against
    `router` (a `Router`) fitted on validation."""
    prepare(documents + documents_val)  # the scale trials and the fit share one vocabulary walk
    label_order = router.labels.names
    head = None
    if scale is None:
        scale, head = dense_scale_trials(X, documents, y, X_val, documents_val, y_val, sample_weight=sample_weight,
                                         label_order=label_order, embedder=embedder, version=version)
    if head is None:  # the trials saw a sample, or there were none: fit on every training example at the scale
        head = train_hybrid_head(X, documents, y, embedder=embedder, version=version, sample_weight=sample_weight,
                                 label_order=label_order, dense_scale=scale)
    head.label_vectors = refresh_label_vectors(router.index, X, y)
    head.metrics = {**head.metrics, "dense_scale": scale}
    calibrate(head, X_val, documents_val, y_val)
    fit_pull(router, head, X_val, documents_val, np.array([router.labels.index(name) for name in y_val]))
    return head


def calibrate(head: LinearHead, X: np.ndarray, documents: list[str] | None, y: list[str]) -> float:
    """Set the head's softmax temperature to the one that minimises the negative log-likelihood of the
    held-out labels (those the head has an output for); returns it. A margin-trained model's decision
    values are not probabilities: this makes them ones, and so decides how sharply the head pulls against
    the router in router × head."""
    col = {name: i for i, name in enumerate(head.labels)}
    rows = [i for i, name in enumerate(y) if name in col]
    if len(rows) < 5:
        return head.temperature
    logits = head.logits(X[rows], [documents[i] for i in rows] if documents is not None else None)
    gold = np.array([col[y[i]] for i in rows])

    def nll(t: float) -> float:
        z = logits / t
        z = z - z.max(axis=1, keepdims=True)
        return float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(gold)), gold]))

    grid = np.geomspace(0.01, 10.0, 61)
    head.temperature = float(grid[int(np.argmin([nll(t) for t in grid]))])
    return head.temperature


def fit_pull(router: Any, head: LinearHead, X: np.ndarray, documents: list[str] | None, gold: np.ndarray) -> float:
    """Set the head's pull (head weight = p ** pull) to the one whose router × head decisions are most
    often right on held-out examples (`router`: a `Router`; `gold`: label indices); returns it.

    How much a head should count against the router depends on what each knows, and that differs by
    mailbox: descriptive label names make the router strong (20newsgroups: 62 % alone), folder names like
    `sean_crandall` make it blind, and one example per label makes the head weak. Measured, not assumed.
    Near-ties go to the stronger pull: the head is what learns from the user."""
    if not len(gold):
        return head.pull
    head.pull = 1.0
    routed = router.with_head(head)
    similarities = routed.active_index.similarities(X)
    probabilities = head.weights(X, routed.labels.names, documents)  # the lexical transform once, not per pull
    right = {}
    for pull in PULLS:
        right[pull] = routed.decide(similarities, probabilities ** pull).top == gold
    best = max(PULLS, key=lambda pull: (right[pull].mean(), pull))
    # The strongest pull within one standard error of the best, the error of a paired difference (the
    # messages on which the two disagree): validation is small and, in a live mailbox, made of the current
    # model's own mistakes, so a weaker pull must win clearly before the head is muted; on a large
    # validation set nearby pulls disagree on few messages and the best is taken.
    def within(pull: float) -> bool:
        return right[best].mean() - right[pull].mean() <= paired_standard_error(right[pull], right[best])

    head.pull = max(pull for pull in PULLS if within(pull))
    return head.pull


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
