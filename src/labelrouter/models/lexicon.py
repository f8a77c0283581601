"""The head's lexical features as numbers: a vocabulary and IDF weights fitted on the training examples'
documents, and each document's L2-normalised sublinear TF-IDF row.

The lexicon is saved as a JSON term list and a tensor: nothing that executes code. (scikit-learn's
TfidfVectorizer computes the same weights, but analysing each document twice, once to fit and once to
transform, was half of a large retraining, and its fitted state is a pickle.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse

from labelrouter.models.analysis import analysed_documents, positions, term_names


@dataclass
class Lexicon:
    """Vocabulary (feature → column) and IDF weights; `transform` gives L2-normalised sublinear TF-IDF."""

    terms: list[str]
    idf: np.ndarray  # (len(terms),) float32

    def __post_init__(self) -> None:
        hashes = np.fromiter(map(hash, self.terms), dtype=np.int64, count=len(self.terms))
        self._order = np.argsort(hashes, kind="stable")
        self._sorted = hashes[self._order]

    def __len__(self) -> int:
        return len(self.terms)

    @classmethod
    def fit(cls, documents: list[str], *, min_df: int = 2, max_features: int = 100_000) -> Lexicon:
        return cls.fit_transform(documents, min_df=min_df, max_features=max_features)[0]

    @classmethod
    def fit_transform(cls, documents: list[str], *, min_df: int = 2,
                      max_features: int = 100_000) -> tuple[Lexicon, sparse.csr_matrix]:
        """Terms in at least `min_df` documents (a term seen once cannot generalise; 1 when there are
        fewer than 2 × min_df documents), the `max_features` most frequent of them (ties by term, so the
        vocabulary does not depend on the process), smoothed IDF (as scikit-learn's:
        ln((1 + n) / (1 + df)) + 1); and the documents' TF-IDF rows. Each document is analysed once."""
        analysed = analysed_documents(documents)
        everything = np.concatenate([h for h, _ in analysed]) if analysed else np.zeros(0, np.int64)
        hashes, df = np.unique(everything, return_counts=True)
        floor = min_df if len(documents) >= 2 * min_df else 1
        hashes, df = hashes[df >= floor], df[df >= floor]
        terms = term_names(hashes, documents, analysed)
        kept = np.arange(len(hashes))
        if len(kept) > max_features:  # most frequent first; at the last frequency kept, ties by term
            bound = np.partition(df, len(df) - max_features)[len(df) - max_features]
            tied = np.nonzero(df == bound)[0]
            tied = tied[np.argsort(terms[tied], kind="stable")]
            above = np.nonzero(df > bound)[0]
            kept = np.concatenate([above, tied[: max_features - len(above)]])
        kept = kept[np.argsort(terms[kept], kind="stable")]  # columns in term order
        idf = (np.log((1 + len(documents)) / (1 + df[kept])) + 1.0).astype(np.float32)
        lexicon = cls(terms[kept].tolist(), idf)
        return lexicon, lexicon._rows(analysed)

    def transform(self, documents: list[str]) -> sparse.csr_matrix:
        return self._rows(analysed_documents(documents))

    def _rows(self, analysed: list[tuple[np.ndarray, np.ndarray]]) -> sparse.csr_matrix:
        shape = (len(analysed), len(self.terms))
        if not analysed or not len(self.terms):
            return sparse.csr_matrix(shape, dtype=np.float32)
        hashes = np.concatenate([h for h, _ in analysed])
        counts = np.concatenate([c for _, c in analysed])
        rows = np.repeat(np.arange(len(analysed)), [len(h) for h, _ in analysed])
        pos, known = positions(self._sorted, hashes)
        rows, cols, counts = rows[known], self._order[pos[known]], counts[known]
        weights = (1.0 + np.log(counts)) * self.idf[cols]
        norms = np.sqrt(np.bincount(rows, weights=weights.astype(np.float64) ** 2, minlength=len(analysed)))
        weights = weights / np.where(norms > 0, norms, 1.0)[rows]
        return sparse.csr_matrix((weights.astype(np.float32), (rows, cols)), shape=shape)
