"""The word TF-IDF + linear SVM baseline that `eval` reports beside labelrouter in every protocol, defined
once so that the full, few-shot and stream protocols and the benchmarks all measure against the same one:
sublinear TF-IDF of word uni- and bigrams, a one-vs-rest linear SVM at C = 0.5."""

from __future__ import annotations

from typing import Any


def tfidf_svm(texts: list[str], labels: list[Any]) -> Any:
    """A scikit-learn pipeline fitted on `texts` and their labels (`predict`, `decision_function`, `classes_`)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_pipeline
    from sklearn.svm import LinearSVC

    return make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True), LinearSVC(C=0.5)).fit(texts, labels)
