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
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from email.utils import getaddresses

import numpy as np
from scipy import sparse

DOCUMENT_CHARS = 5_000  # body characters a document keeps: the long tail of a long mail adds little
_WORD = re.compile(r"(?u)\b\w\w+\b")
_MAX_WORD = 30  # longer "words" are base64, hashes, URLs run together: noise, and vocabulary bloat
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
    return [w for w in _WORD.findall(text.lower()) if len(w) <= _MAX_WORD]


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


@dataclass
class Lexicon:
    """Vocabulary (feature → column) and IDF weights; `transform` gives L2-normalised sublinear TF-IDF."""

    terms: list[str]
    idf: np.ndarray  # (len(terms),) float32

    def __post_init__(self) -> None:
        self._column = {term: i for i, term in enumerate(self.terms)}

    def __len__(self) -> int:
        return len(self.terms)

    @classmethod
    def fit(cls, documents: list[str], *, min_df: int = 2, max_features: int = 100_000) -> Lexicon:
        return cls.fit_transform(documents, min_df=min_df, max_features=max_features)[0]

    @classmethod
    def fit_transform(cls, documents: list[str], *, min_df: int = 2,
                      max_features: int = 100_000) -> tuple[Lexicon, sparse.csr_matrix]:
        """Terms in at least `min_df` documents (a term seen once cannot generalise; 1 when there are
        fewer than 2 × min_df documents), the `max_features` most frequent of them, smoothed IDF
        (as scikit-learn's: ln((1 + n) / (1 + df)) + 1); and the documents' TF-IDF rows. Each document
        is analysed once."""
        analysed = [Counter(analyze(d or "")) for d in documents]
        df: Counter[str] = Counter()
        for counts in analysed:
            df.update(counts.keys())
        floor = min_df if len(documents) >= 2 * min_df else 1
        kept = [(n, t) for t, n in df.items() if n >= floor]
        if len(kept) > max_features:  # most frequent first, ties by term for a stable vocabulary
            kept = sorted(kept, key=lambda nt: (-nt[0], nt[1]))[:max_features]
        terms = sorted(t for _, t in kept)
        n = len(documents)
        idf = np.array([np.log((1 + n) / (1 + df[t])) + 1.0 for t in terms], dtype=np.float32)
        lexicon = cls(terms, idf)
        return lexicon, lexicon._rows(analysed)

    def transform(self, documents: list[str]) -> sparse.csr_matrix:
        return self._rows([Counter(analyze(d or "")) for d in documents])

    def _rows(self, analysed: list[Counter[str]]) -> sparse.csr_matrix:
        rows, cols, vals = [], [], []
        column = self._column
        for i, features in enumerate(analysed):
            counts = {column[t]: c for t, c in features.items() if t in column}
            if not counts:
                continue
            js = np.fromiter(counts, dtype=np.int64, count=len(counts))
            tf = 1.0 + np.log(np.fromiter(counts.values(), dtype=np.float32, count=len(counts)))
            weights = tf * self.idf[js]
            weights /= np.linalg.norm(weights) or 1.0
            rows.append(np.full(len(js), i))
            cols.append(js)
            vals.append(weights)
        shape = (len(analysed), len(self.terms))
        if not rows:
            return sparse.csr_matrix(shape, dtype=np.float32)
        return sparse.csr_matrix((np.concatenate(vals).astype(np.float32), (np.concatenate(rows), np.concatenate(cols))),
                                 shape=shape)
