"""The head's SVM fit split over processes: the same model as one fit, reproducible, and robust to a
process that dies."""

import os

import numpy as np
import pytest
from scipy import sparse

from labelrouter.training import ovr
from labelrouter.training.ovr import fit_linear_svc

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="forked fits need os.fork (Linux)")


def _problem(n_classes=7, n_per=30, dim=40, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_classes, dim))
    X = np.vstack([c + 0.8 * rng.normal(size=(n_per, dim)) for c in centres])
    X[np.abs(X) < 0.5] = 0.0  # sparse, as the lexical block is
    targets = np.repeat(np.arange(n_classes), n_per)
    weights = rng.choice([0.5, 1.0, 3.0], size=len(targets))
    return sparse.csr_matrix(X), targets, weights


def test_a_fit_split_over_processes_is_the_single_fit_and_reproducible():
    X, targets, weights = _problem()
    one = fit_linear_svc(X, targets, 7, C=0.5, tol=1e-6, sample_weight=weights, jobs=1)
    split = fit_linear_svc(X, targets, 7, C=0.5, tol=1e-6, sample_weight=weights, jobs=3)
    again = fit_linear_svc(X, targets, 7, C=0.5, tol=1e-6, sample_weight=weights, jobs=3)
    assert split[0].shape == one[0].shape == (7, X.shape[1]) and split[1].shape == (7,)
    # Each label's problem is the same convex problem: at a tight tolerance the same solution.
    np.testing.assert_allclose(split[0], one[0], atol=1e-3)
    np.testing.assert_allclose(split[1], one[1], atol=1e-3)
    np.testing.assert_array_equal(split[0], again[0])  # the same bytes run to run
    decisions = lambda model: (X @ model[0].T + model[1]).argmax(axis=1)  # noqa: E731
    np.testing.assert_array_equal(decisions(split), decisions(one))


def test_a_process_that_dies_has_its_labels_fitted_in_the_parent(monkeypatch, capfd):
    X, targets, weights = _problem()
    expected = fit_linear_svc(X, targets, 7, C=0.5, tol=1e-6, sample_weight=weights, jobs=2)
    parent, real = os.getpid(), ovr._fit_group

    def dies_in_a_child(*args, **kwargs):
        if os.getpid() != parent:
            raise MemoryError("out of memory")
        return real(*args, **kwargs)

    monkeypatch.setattr(ovr, "_fit_group", dies_in_a_child)
    got = fit_linear_svc(X, targets, 7, C=0.5, tol=1e-6, sample_weight=weights, jobs=2)
    np.testing.assert_array_equal(got[0], expected[0])
    assert "MemoryError: out of memory" in capfd.readouterr().err


def test_two_labels_or_one_core_is_the_ordinary_fit():
    X, targets, weights = _problem(n_classes=2)
    coef, intercept = fit_linear_svc(X, targets, 2, C=0.5, tol=1e-4, jobs=4)
    assert coef.shape == (1, X.shape[1]) and intercept.shape == (1,)  # one row scoring class 1
    X, targets, _ = _problem(n_classes=5)
    assert fit_linear_svc(X, targets, 5, C=0.5, tol=1e-4, jobs=1)[0].shape == (5, X.shape[1])
