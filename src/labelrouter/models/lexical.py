"""Lexical evidence: what people file mail by and a sentence embedding blurs.

A message's *document* is the text the head's lexical features are read from, stored beside the embedded
text (so training never needs the mailbox):

    from: alice@example.com
    to: bob@example.org, team@example.org

    <subject>
    <body, capped>

Features (`analyze`): lowercase word uni- and bi-grams of subject and body (the whole capped body, not
just the part the encoder sees), subject words once more as `subject:<word>`, and the sender's and each
recipient's address and domain (`from:alice@example.com`, `from:@example.com`, `to:…`). They are weighted
by sublinear TF-IDF and L2-normalised per message (`Lexicon.transform`), with the vocabulary and IDF fitted
on the head's training examples and saved as a JSON term list and a tensor: nothing that executes code.
(scikit-learn's TfidfVectorizer computes the same weights, but analysing each document twice — once to
fit, once to transform — was half of a 10,000-message retraining, and its fitted state is a pickle.)
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from email.utils import getaddresses

import numpy as np
from scipy import sparse

DOCUMENT_CHARS = 5_000  # body characters a document keeps: the long tail of a long mail adds little
# Words of 2 to 30 characters: longer "words" are base64, hashes, URLs run together (noise, and vocabulary
# bloat). A longer run of word characters has no \b inside it, so it is skipped whole, as a length filter
# after the match would — in the regex engine rather than a Python loop (a fifth of analysing).
_WORD = re.compile(r"(?u)\b\w{2,30}\b")
_REPLY_PREFIX = re.compile(r"^\s*((re|fw|fwd|aw|wg|sv|tr)\s*(\[\d+\])?\s*:\s*)+", re.IGNORECASE)


def _addresses(value: str | Iterable[str]) -> list[str]:
    items = [value] if isinstance(value, str) else list(value)
    found = []
    for _name, address in getaddresses([str(v) for v in items if v]):
        address = address.strip().lower()
        if "@" in address:
            found.append(address)
    return found


def message_document(sender: str, recipients: Iterable[str], subject: str, body: str,
                     body_chars: int = DOCUMENT_CHARS) -> str:
    """The document of one message (see the module docstring)."""
    lines = []
    senders = _addresses(sender)
    if senders:
        lines.append("from: " + ", ".join(senders))
    to = _addresses(recipients)
    if to:
        lines.append("to: " + ", ".join(to[:50]))  # a mailing list's thousand Cc's say no more than fifty
    head = "\n".join(lines)
    text = "\n".join(part for part in (subject.strip(), body[:body_chars].strip()) if part)
    return f"{head}\n\n{text}"


def parse_document(document: str) -> tuple[str, list[str], str, str]:
    """(sender, recipients, subject, body) back from a document: how replay rebuilds a stored message."""
    head, sep, text = document.partition("\n\n")
    if not sep:
        head, text = "", document
    fields = dict(line.partition(": ")[::2] for line in head.splitlines())
    subject, _, body = text.partition("\n")
    recipients = [a for a in fields.get("to", "").split(", ") if a]
    return fields.get("from", "").split(", ")[0], recipients, subject, body


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def analyze(document: str) -> list[str]:
    """A document's features (a term may repeat: counts are term frequencies)."""
    head, sep, text = document.partition("\n\n")
    if not sep:  # not a document: plain text (e.g. an old example stored before documents existed)
        head, text = "", document
    features = []
    for line in head.splitlines():
        field, _, value = line.partition(": ")
        if field not in ("from", "to"):
            continue
        for address in value.split(", "):
            features += [f"{field}:{address}", f"{field}:@{address.rpartition('@')[2]}"]
    subject, _, _ = text.partition("\n")
    features += ["subject:" + w for w in _words(subject)]
    thread = " ".join(_words(_REPLY_PREFIX.sub("", subject)))
    if thread:  # a reply is filed where its thread was: the whole subject, reply prefixes off, is one feature
        features.append("thread:" + thread)
    words = _words(text)
    features += words
    features += map(" ".join, zip(words, words[1:], strict=False))
    return features


class AnalysisCache:
    """Each document analysed once while this cache is active (`with cache.active():`), however many
    times it is transformed: a training run fits, calibrates, fits the pull, evaluates and refits on the
    same documents, and analysing them is most of a lexical fit. A document is kept as its features'
    hashes and counts (no strings); the names of the hashes a vocabulary keeps are found once and kept.
    Bounded: the least recently used documents are dropped beyond `max_documents`."""

    def __init__(self, max_documents: int = 50_000):
        self.max_documents = max_documents
        self._documents: OrderedDict[str, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self.names: dict[int, str] = {}

    @contextmanager
    def active(self) -> Iterator[AnalysisCache]:
        token = _ACTIVE.set(self)
        try:
            yield self
        finally:
            _ACTIVE.reset(token)

    def get(self, document: str) -> tuple[np.ndarray, np.ndarray]:
        found = self._documents.get(document)
        if found is None:
            found = self._documents[document] = term_hashes(document)
            if len(self._documents) > self.max_documents:
                self._documents.popitem(last=False)
        else:
            self._documents.move_to_end(document)
        return found


_ACTIVE: ContextVar[AnalysisCache | None] = ContextVar("labelrouter_lexical_analysis", default=None)


@contextmanager
def uncached() -> Iterator[None]:
    """Analyse every document afresh inside this block (e.g. to time what inference pays)."""
    token = _ACTIVE.set(None)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def term_hashes(document: str) -> tuple[np.ndarray, np.ndarray]:
    """(sorted unique hashes of the document's features, their counts). Python's string hash: stable
    within a process, which is all a hash lives for (vocabularies are saved as terms)."""
    features = analyze(document)
    hashes = np.fromiter(map(hash, features), dtype=np.int64, count=len(features))
    unique, counts = np.unique(hashes, return_counts=True)
    return unique, counts.astype(np.float32)


def prepare(documents: list[str], min_df: int = 2) -> None:
    """With a cache active: analyse `documents` and name, in one walk, every term in at least `min_df` of
    them, so the fits that follow on any part of them (a sample, a split, all) find their vocabulary
    named instead of each walking the documents again."""
    if _ACTIVE.get() is None or not documents:
        return
    analysed = _analysed(documents)
    hashes, df = np.unique(np.concatenate([h for h, _ in analysed]), return_counts=True)
    _names(hashes[df >= min_df], documents, analysed)


def _analysed(documents: list[str]) -> list[tuple[np.ndarray, np.ndarray]]:
    cache = _ACTIVE.get()
    return [cache.get(d or "") if cache is not None else term_hashes(d or "") for d in documents]


def _names(wanted: np.ndarray, documents: list[str], analysed: list[tuple[np.ndarray, np.ndarray]]) -> dict[int, str]:
    """The term behind each hash in `wanted` (sorted): re-analyses only documents holding a hash not yet
    named (by the active cache, or earlier in this walk), and stops once every one is named. Newest
    (last) documents first: a refit's new terms are in the examples added last."""
    cache = _ACTIVE.get()
    known = cache.names if cache is not None else {}
    named = np.array([int(h) in known for h in wanted.tolist()], dtype=bool)
    found = {int(h): known[int(h)] for h in wanted[named].tolist()}
    for document, (hashes, _) in zip(reversed(documents), reversed(analysed), strict=True):
        if named.all():
            break
        pos = np.searchsorted(wanted, hashes).clip(max=len(wanted) - 1)
        hit = (wanted[pos] == hashes) & ~named[pos]
        if not hit.any():
            continue
        features = analyze(document or "")
        feature_hashes = np.fromiter(map(hash, features), dtype=np.int64, count=len(features))
        needed = hashes[hit]
        first = np.unique(feature_hashes, return_index=True)  # each hash's first feature
        where = first[1][np.searchsorted(first[0], needed)]
        found.update(zip(needed.tolist(), (features[i] for i in where.tolist()), strict=True))
        named[pos[hit]] = True
    if cache is not None:
        cache.names.update(found)
    return found


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
        analysed = _analysed(documents)
        everything = np.concatenate([h for h, _ in analysed]) if analysed else np.zeros(0, np.int64)
        hashes, df = np.unique(everything, return_counts=True)
        floor = min_df if len(documents) >= 2 * min_df else 1
        hashes, df = hashes[df >= floor], df[df >= floor]
        names = _names(hashes, documents, analysed)
        kept = [(int(n), names[h]) for h, n in zip(hashes.tolist(), df.tolist(), strict=True)]
        if len(kept) > max_features:  # most frequent first, ties by term for a stable vocabulary
            kept = sorted(kept, key=lambda nt: (-nt[0], nt[1]))[:max_features]
        kept.sort(key=lambda nt: nt[1])
        n = len(documents)
        idf = np.array([np.log((1 + n) / (1 + d)) + 1.0 for d, _ in kept], dtype=np.float32)
        lexicon = cls([t for _, t in kept], idf)
        return lexicon, lexicon._rows(analysed)

    def transform(self, documents: list[str]) -> sparse.csr_matrix:
        return self._rows(_analysed(documents))

    def _rows(self, analysed: list[tuple[np.ndarray, np.ndarray]]) -> sparse.csr_matrix:
        shape = (len(analysed), len(self.terms))
        if not analysed or not len(self.terms):
            return sparse.csr_matrix(shape, dtype=np.float32)
        hashes = np.concatenate([h for h, _ in analysed])
        counts = np.concatenate([c for _, c in analysed])
        rows = np.repeat(np.arange(len(analysed)), [len(h) for h, _ in analysed])
        pos = np.searchsorted(self._sorted, hashes).clip(max=len(self._sorted) - 1)
        known = self._sorted[pos] == hashes
        rows, cols, counts = rows[known], self._order[pos[known]], counts[known]
        weights = (1.0 + np.log(counts)) * self.idf[cols]
        norms = np.sqrt(np.bincount(rows, weights=weights.astype(np.float64) ** 2, minlength=len(analysed)))
        weights = weights / np.where(norms > 0, norms, 1.0)[rows]
        return sparse.csr_matrix((weights.astype(np.float32), (rows, cols)), shape=shape)
