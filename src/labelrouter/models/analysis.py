"""Analysing documents into hashed term counts, once per document: analysing is most of a lexical fit.

A training run analyses each document once (`AnalysisCache`), on every core when there are thousands
(`AnalysisCache.analyse`: forked processes hand back arrays in a file), and keeps the result for the next
run (`AnalysisCache.save` / `load`, in the cache folder, keyed by each document's digest): a nightly
retraining analyses only the mail that arrived since. Terms are Python string hashes, named on demand
(`TermNames`), so a vocabulary is saved as terms, never as hashes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import sys
import tempfile
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

import numpy as np

from labelrouter.models.document import analyze
from labelrouter.util.cores import default_jobs

log = logging.getLogger(__name__)


def positions(table: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(where each of `values` is or would go in the sorted `table`, clipped to a valid index; which of
    them are there): the membership test every lookup by hash here is."""
    if not len(table):
        return np.zeros(len(values), dtype=np.int64), np.zeros(len(values), dtype=bool)
    pos = np.searchsorted(table, values).clip(max=len(table) - 1)
    return pos, table[pos] == values


class TermNames:
    """The term behind each feature hash, as two arrays in hash order (a dict of a million terms cost a
    second a run in lookups alone). Terms found since the last merge wait in a list and are merged in
    when they reach a quarter of the table: each merge is one sorted insert, not a rebuild."""

    def __init__(self) -> None:
        self.hashes = np.zeros(0, dtype=np.int64)
        self.terms = np.zeros(0, dtype=object)
        self._waiting: list[tuple[np.ndarray, list[str]]] = []
        self._n_waiting = 0

    def __len__(self) -> int:
        return len(self.hashes) + self._n_waiting

    def add(self, hashes: np.ndarray, features: list[str], first: np.ndarray) -> None:
        """`hashes` sorted and unique, found first at `first` in `features`; those already known are skipped
        (only the new ones' terms are looked at: most of a document's are known after a few hundred)."""
        new = ~positions(self.hashes, hashes)[1]
        n_new = int(new.sum())
        if not n_new:
            return
        self._waiting.append((hashes[new], [features[i] for i in first[new].tolist()]))
        self._n_waiting += n_new
        if self._n_waiting > max(20_000, len(self.hashes) // 4):
            self._merge()

    def lookup(self, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(found: which of `wanted` have a term, terms: object array aligned with `wanted`, None where not)."""
        self._merge()
        terms = np.full(len(wanted), None, dtype=object)
        pos, found = positions(self.hashes, wanted)
        terms[found] = self.terms[pos[found]]
        return found, terms

    def sorted(self) -> tuple[np.ndarray, np.ndarray]:
        """(hashes, terms), in hash order."""
        self._merge()
        return self.hashes, self.terms

    def keep(self, hashes: np.ndarray) -> None:
        """Forget every term whose hash is not in `hashes` (sorted)."""
        self._merge()
        mask = positions(hashes, self.hashes)[1]
        self.hashes, self.terms = self.hashes[mask], self.terms[mask]

    def _merge(self) -> None:
        if not self._waiting:
            return
        hashes = np.concatenate([h for h, _ in self._waiting])
        terms = np.empty(len(hashes), dtype=object)
        terms[:] = [t for _, chunk in self._waiting for t in chunk]
        self._waiting, self._n_waiting = [], 0
        hashes, first = np.unique(hashes, return_index=True)  # one term found by two documents while waiting
        terms = terms[first]
        at = np.searchsorted(self.hashes, hashes)
        self.hashes, self.terms = np.insert(self.hashes, at, hashes), np.insert(self.terms, at, terms)


class AnalysisCache:
    """Each document analysed once while this cache is active (`with cache.active():`), however many
    times it is transformed: a training run fits, calibrates, fits the pull, evaluates and refits on the
    same documents, and analysing them is most of a lexical fit. A document is kept as its features'
    hashes and counts; the terms behind the hashes are kept once (`names`), recorded as the documents are
    analysed — finding them afterwards meant analysing nearly every document a second time (a vocabulary
    keeps terms seen in as few as 2 or 3 documents, spread over all of them), a fifth of a nightly
    retraining. Bounded: the least recently used documents are dropped beyond `max_documents`, and beyond
    `max_names` terms the names of terms found in only one cached document are dropped (no vocabulary keeps
    those; should one return in a later document, that document names it again)."""

    def __init__(self, max_documents: int = 50_000, max_names: int = 2_000_000):
        self.max_documents = max_documents
        self.max_names = max_names
        self._documents: OrderedDict[str, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self.names = TermNames()
        self._saved: _SavedAnalysis | None = None  # an earlier run's, read by `load`
        self._reread: dict[str, bytes] = {}  # documents read back from it, and their digests

    @contextmanager
    def active(self) -> Iterator[AnalysisCache]:
        token = _ACTIVE.set(self)
        try:
            yield self
        finally:
            _ACTIVE.reset(token)

    def analyse(self, documents: list[str], jobs: int | None = None) -> None:
        """Analyse the documents not cached yet, on `jobs` processes (default: the available cores) when
        there are enough of them to be worth a fork (`PARALLEL_FROM`): each forked process analyses a
        share and hands back its hashes, counts and terms as arrays in a file (nothing pickled); one that
        fails has its share analysed here."""
        todo = list(dict.fromkeys(d or "" for d in documents if (d or "") not in self._documents))
        if self._saved is not None:  # what an earlier run analysed is read back, not analysed again
            todo = [d for d in todo if self._from_saved(d) is None]
        jobs = default_jobs() if jobs is None else jobs
        if jobs < 2 or len(todo) < PARALLEL_FROM or not hasattr(os, "fork"):
            for document in todo:
                self.get(document)
            return
        parts = [todo[i::jobs] for i in range(jobs)]
        with tempfile.TemporaryDirectory(prefix="labelrouter-analysis-") as tmp:
            children: dict[int, tuple[Path, list[str]]] = {}
            try:
                for k, part in enumerate(parts[1:], 1):
                    out = Path(tmp) / f"{k}.npz"
                    pid = os.fork()
                    if pid == 0:  # the child: analyse, write, leave without running the parent's cleanup
                        code = 1
                        try:
                            signal.signal(signal.SIGINT, signal.SIG_DFL)
                            _write_analysis(out, part)
                            code = 0
                        except BaseException as exc:  # noqa: BLE001 - the parent analyses this share and says so
                            print(f"labelrouter: analysis process: {type(exc).__name__}: {exc}", file=sys.stderr)
                        finally:
                            os._exit(code)
                    children[pid] = (out, part)
                for document in parts[0]:
                    self.get(document)
                for pid, (out, part) in list(children.items()):
                    _, status = os.waitpid(pid, 0)
                    del children[pid]
                    if os.waitstatus_to_exitcode(status) == 0:
                        self._read_analysis(out, part)
                    else:
                        log.warning("an analysis process failed (status %s); analysing its %d documents here",
                                    status, len(part))
                        for document in part:
                            self.get(document)
            finally:
                for pid in children:  # interrupted while waiting: leave no orphan behind
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)

    def _read_analysis(self, path: Path, part: list[str]) -> None:
        with np.load(path, allow_pickle=False) as data:
            hashes, counts, ends = data["hashes"], data["counts"], data["ends"]
            terms = bytes(data["terms"]).decode("utf-8").split(_TERM_SEPARATOR) if len(data["terms"]) else []
            self.names.add(data["term_hashes"], terms, np.arange(len(terms)))
        for document, (start, end) in zip(part, _spans(ends), strict=True):
            self._put(document, (hashes[start:end], counts[start:end]))
        self._bound_names()

    def get(self, document: str) -> tuple[np.ndarray, np.ndarray]:
        found = self._documents.get(document)
        if found is None:
            found = self._from_saved(document) if self._saved is not None else None
            if found is None:
                found = term_hashes(document, self.names)
                self._put(document, found)
                self._bound_names()
        else:
            self._documents.move_to_end(document)
        return found

    def _put(self, document: str, analysed: tuple[np.ndarray, np.ndarray]) -> None:
        """Keep a document's analysis, the least recently used dropped beyond `max_documents`."""
        self._documents[document] = analysed
        while len(self._documents) > self.max_documents:
            self._documents.popitem(last=False)

    def _bound_names(self) -> None:
        """After terms were added: beyond `max_names`, the names of terms in one cached document go."""
        if len(self.names) > self.max_names:
            self._forget_rare_names()

    def _from_saved(self, document: str) -> tuple[np.ndarray, np.ndarray] | None:
        assert self._saved is not None
        digest = _digest(document)
        found = self._saved.get(digest)
        if found is not None:
            self._reread[document] = digest
            self._put(document, found)
        return found

    # -- kept between runs: a nightly retraining analyses only the mail that arrived since -----------------
    def save(self, path: Path) -> None:
        """Write the analyses of the documents this cache holds to `path` (atomically): each document by
        its digest, its features as positions in one term list, so the file means the same in a process
        with another string hash. Documents read back from the file keep their rows as they were and only
        the new ones are looked up (the term list grows; it is rebuilt once half the documents it served
        are gone). Documents with a term whose name this cache forgot are left out (they are analysed
        again next time). Nothing is written when nothing changed."""
        saved = self._saved
        documents = list(self._documents.items())
        reread = [(d, self._reread[d]) for d, _ in documents if d in self._reread] if saved is not None else []
        if saved is not None and len(reread) < len(saved.spans) // 2:  # mostly other mail now: rebuild
            saved, reread = None, []
        fresh = [(d, h, c) for d, (h, c) in documents if saved is None or d not in self._reread]
        if saved is not None and not fresh and len(reread) == len(saved.spans):
            return
        base_terms = saved.terms if saved is not None else []
        # The fresh documents' features: ids of terms already in the list, then of the terms they add.
        hashes = np.concatenate([h for _, h, _ in fresh]) if fresh else np.zeros(0, np.int64)
        ids = np.full(len(hashes), -1, dtype=np.int64)
        if saved is not None:
            at, there = positions(saved.sorted_hashes, hashes)
            ids[there] = saved.order[at[there]]
        table, table_terms = self.names.sorted()
        new = ids < 0
        at, named = positions(table, hashes[new])
        owner = np.repeat(np.arange(len(fresh)), [len(h) for _, h, _ in fresh])
        unnamed = np.bincount(owner[new][~named], minlength=len(fresh)) > 0
        used = np.bincount(at[named & ~unnamed[owner[new]]], minlength=len(table)) > 0
        ids[np.flatnonzero(new)[named]] = (np.cumsum(used) - 1 + len(base_terms))[at[named]]
        keep = ~unnamed
        rows_fresh = [(d, ids[start:end], c) for (d, _, c), (start, end), k in
                      zip(fresh, _spans(np.cumsum([len(h) for _, h, _ in fresh])), keep.tolist(), strict=True) if k]
        rows_saved = [(digest, saved.ids[a:b], saved.counts[a:b]) for _, digest in reread
                      for a, b in [saved.spans[digest]]] if saved is not None else []
        if not rows_fresh and not rows_saved:
            return
        terms = base_terms + table_terms[used].tolist()
        digests = [digest for digest, _, _ in rows_saved] + [_digest(d) for d, _, _ in rows_fresh]
        all_ids = [i for _, i, _ in rows_saved] + [i for _, i, _ in rows_fresh]
        counts = [np.asarray(c) for _, _, c in rows_saved] + [c for _, _, c in rows_fresh]
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as out:
            np.savez(out, format=np.array([ANALYSIS_FORMAT]),
                     digests=np.frombuffer(b"".join(digests), dtype=np.uint8).reshape(len(digests), -1),
                     ends=np.cumsum([len(i) for i in all_ids]), ids=np.concatenate(all_ids).astype(np.int32),
                     counts=np.concatenate(counts).clip(max=65_535).astype(np.uint16),
                     terms=np.frombuffer(_TERM_SEPARATOR.join(terms).encode("utf-8"), dtype=np.uint8))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path, **kwargs: int) -> AnalysisCache:
        """A cache that reads back the analyses `save` wrote to `path`; an empty one, with a warning, when
        the file is unreadable or from another analysis format (a cache: losing it costs time, not data)."""
        cache = cls(**kwargs)
        if not path.exists():
            return cache
        try:
            with np.load(path, allow_pickle=False) as data:
                if int(data["format"][0]) != ANALYSIS_FORMAT:
                    log.info("lexical analyses in %s are of another format; analysing afresh", path)
                    return cache
                saved = _SavedAnalysis(data["digests"], data["ends"], data["ids"], data["counts"],
                                       bytes(data["terms"]).decode("utf-8"))
        except Exception as exc:  # noqa: BLE001 - a damaged cache is rebuilt, never fatal
            log.warning("cannot read the saved lexical analyses %s (%s: %s); analysing afresh",
                        path, type(exc).__name__, exc)
            return cache
        cache._saved = saved
        cache.names.add(*saved.names())
        return cache

    def _forget_rare_names(self) -> None:
        hashes, df = np.unique(np.concatenate([h for h, _ in self._documents.values()]), return_counts=True)
        self.names.keep(hashes[df >= 2])


ANALYSIS_FORMAT = 1  # of `AnalysisCache.save`: bump whenever `analyze` changes what a document's features are


def _digest(document: str) -> bytes:
    return hashlib.blake2b(document.encode("utf-8", "surrogatepass"), digest_size=16).digest()


class _SavedAnalysis:
    """Analyses read from a file (`AnalysisCache.load`), turned into hashes of this process on demand."""

    def __init__(self, digests: np.ndarray, ends: np.ndarray, ids: np.ndarray, counts: np.ndarray, terms: str):
        self.terms = terms.split(_TERM_SEPARATOR) if terms else []
        self.hashes = np.fromiter(map(hash, self.terms), dtype=np.int64, count=len(self.terms))
        self.order = np.argsort(self.hashes, kind="stable")
        self.sorted_hashes = self.hashes[self.order]
        spans = _spans(ends)
        if digests.ndim != 2 or len(digests) != len(spans) \
                or (spans and (spans[-1][1] != len(ids) or len(counts) != len(ids))) \
                or (len(ids) and (ids.min() < 0 or ids.max() >= len(self.terms))) or any(end < 0 for _, end in spans):
            raise ValueError("inconsistent arrays")
        self.spans = {bytes(d): span for d, span in zip(digests, spans, strict=True)}
        self.ids, self.counts = ids, counts

    def names(self) -> tuple[np.ndarray, list[str], np.ndarray]:
        return self.sorted_hashes, self.terms, self.order

    def get(self, digest: bytes) -> tuple[np.ndarray, np.ndarray] | None:
        span = self.spans.get(digest)
        if span is None:
            return None
        hashes = self.hashes[self.ids[span[0]:span[1]]]
        order = np.argsort(hashes)
        return hashes[order], self.counts[span[0]:span[1]][order].astype(np.float32)


def _spans(ends: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) of each of consecutive runs laid end to end, from where each ends."""
    ends = np.asarray(ends, dtype=np.int64).tolist()
    return list(zip([0, *ends[:-1]], ends, strict=True)) if ends else []


PARALLEL_FROM = 2_000  # documents to analyse before the work is shared with forked processes
_TERM_SEPARATOR = "\n"  # never inside a feature: fields and words are read line by line, words are \w


def _write_analysis(path: Path, documents: list[str]) -> None:
    """A forked process's share of `AnalysisCache.analyse`: the documents' hashes and counts end to end,
    where each ends, and the terms found, as arrays in `path`."""
    names = TermNames()
    analysed = [term_hashes(d, names) for d in documents]
    names.lookup(np.zeros(0, dtype=np.int64))  # merges what waits
    blob = _TERM_SEPARATOR.join(names.terms.tolist()).encode("utf-8")
    np.savez(path, hashes=np.concatenate([h for h, _ in analysed]), counts=np.concatenate([c for _, c in analysed]),
             ends=np.cumsum([len(h) for h, _ in analysed]), term_hashes=names.hashes,
             terms=np.frombuffer(blob, dtype=np.uint8))


_ACTIVE: ContextVar[AnalysisCache | None] = ContextVar("labelrouter_lexical_analysis", default=None)


@contextmanager
def uncached() -> Iterator[None]:
    """Analyse every document afresh inside this block (e.g. to time what inference pays)."""
    token = _ACTIVE.set(None)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def term_hashes(document: str, names: TermNames | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(sorted unique hashes of the document's features, their counts); their terms added to `names` when
    given. Python's string hash: stable within a process, which is all a hash lives for (vocabularies are
    saved as terms)."""
    features = analyze(document)
    hashes = np.fromiter(map(hash, features), dtype=np.int64, count=len(features))
    if names is None:
        unique, counts = np.unique(hashes, return_counts=True)
    else:
        unique, first, counts = np.unique(hashes, return_index=True, return_counts=True)
        names.add(unique, features, first)
    return unique, counts.astype(np.float32)


def prepare(documents: list[str], min_df: int = 2) -> None:
    """With a cache active: analyse `documents` and name every term in at least `min_df` of them, so the
    fits that follow on any part of them (a sample, a split, all) find their vocabulary named."""
    cache = _ACTIVE.get()
    if cache is None or not documents:
        return
    cache.analyse(documents)
    analysed = analysed_documents(documents)
    hashes, df = np.unique(np.concatenate([h for h, _ in analysed]), return_counts=True)
    term_names(hashes[df >= min_df], documents, analysed)


def analysed_documents(documents: list[str]) -> list[tuple[np.ndarray, np.ndarray]]:
    cache = _ACTIVE.get()
    return [cache.get(d or "") if cache is not None else term_hashes(d or "") for d in documents]


def term_names(wanted: np.ndarray, documents: list[str], analysed: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """The term behind each hash in `wanted` (sorted), as an object array: from the active cache's names,
    else (no cache, or a name the cache forgot) by analysing again the documents holding an unnamed hash,
    newest (last) first, until every one is named."""
    cache = _ACTIVE.get()
    table = cache.names if cache is not None else TermNames()
    named, terms = table.lookup(wanted)
    for document, (hashes, _) in zip(reversed(documents), reversed(analysed), strict=True):
        if named.all():
            break
        pos, there = positions(wanted, hashes)
        hit = there & ~named[pos]
        if not hit.any():
            continue
        features = analyze(document or "")
        feature_hashes = np.fromiter(map(hash, features), dtype=np.int64, count=len(features))
        first = np.unique(feature_hashes, return_index=True)  # each hash's first feature
        where = first[1][np.searchsorted(first[0], hashes[hit])]
        terms[pos[hit]] = [features[i] for i in where.tolist()]
        named[pos[hit]] = True
    return terms
