"""Head training on synthetic embeddings: it learns, keeps label order, and round-trips as an artifact."""

from pathlib import Path

import numpy as np
import pytest

from labelrouter.errors import LabelRouterError
from labelrouter.models.bundle import load_head
from labelrouter.training.head import train_linear_head


def _clusters(labels, n_per=40, dim=16, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(labels), dim))
    X = np.vstack([c + 0.3 * rng.normal(size=(n_per, dim)) for c in centres]).astype(np.float32)
    y = [name for name in labels for _ in range(n_per)]
    return X, y, centres


@pytest.mark.parametrize("labels", [["a", "b"], ["c", "a", "b", "d"]])
def test_head_learns_separable_labels_in_the_given_order(labels):
    X, y, centres = _clusters(labels)
    head = train_linear_head(X, y, embedder="enc@1", version="t1", label_order=labels)
    assert head.labels == labels
    w = head.weights(centres.astype(np.float32), labels)
    assert (np.argmax(w, axis=1) == np.arange(len(labels))).all()
    assert ((w >= 0) & (w <= 1)).all() and np.allclose(w.sum(axis=1), 1, atol=1e-5)


def test_label_without_rows_gets_the_mean_weight_and_round_trips(tmp_path: Path):
    X, y, centres = _clusters(["a", "b", "c"])
    head = train_linear_head(X, y, embedder="enc@1", version="t2", label_order=["a", "b", "c", "unseen"])
    assert head.labels == ["a", "b", "c"]
    head.save(tmp_path / "h")
    loaded = load_head(tmp_path / "h", embedder="enc@1", dim=X.shape[1])
    w = loaded.weights(centres.astype(np.float32), ["a", "b", "c", "unseen"])
    np.testing.assert_allclose(w[:, 3], 1 / 3, atol=1e-5)  # the mean of a softmax over 3 labels
    assert (w[:, 3] < w.max(axis=1)).all()


def test_one_label_is_not_enough():
    with pytest.raises(LabelRouterError, match="at least 2 labels"):
        train_linear_head(np.zeros((3, 4), np.float32), ["a"] * 3, embedder="e", version="v")


def test_refreshed_label_vectors_blend_description_and_examples(tmp_path: Path):
    from labelrouter.labels import parse_label_set
    from labelrouter.models.label_index import LabelIndex
    from labelrouter.training.head import refresh_label_vectors

    labels = parse_label_set({"labels": [{"name": "a"}, {"name": "misc2"}]}, require_fallback=False)
    index = LabelIndex(labels, np.eye(2, 4, dtype=np.float32), "enc@1")
    X = np.tile(np.array([[0, 0, 1, 0]], np.float32), (4, 1))
    vectors = refresh_label_vectors(index, X, ["misc2"] * 4, prior=4.0)
    assert list(vectors) == ["misc2"]  # labels without examples keep their description vector
    np.testing.assert_allclose(vectors["misc2"], np.array([0, 1, 1, 0]) / np.sqrt(2), atol=1e-6)
    moved = index.with_vectors(vectors)
    assert moved.similarities(X[:1])[0, 1] > index.similarities(X[:1])[0, 1]

    head = train_linear_head(np.vstack([X, -X]), ["misc2"] * 4 + ["a"] * 4, embedder="enc@1", version="v")
    head.label_vectors = vectors
    head.save(tmp_path / "h")
    loaded = load_head(tmp_path / "h", embedder="enc@1", dim=4)
    np.testing.assert_allclose(loaded.label_vectors["misc2"], vectors["misc2"])
