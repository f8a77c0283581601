"""The training graph's run context: its dependencies (store, encoder, router, registry), its policy, and
a per-run cache of what it has read, with the lookups the stages share."""



from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from labelrouter.labels import LabelSet
from labelrouter.models.analysis import AnalysisCache
from labelrouter.models.encoder import Encoder
from labelrouter.models.label_index import LabelIndex
from labelrouter.models.registry import ModelRegistry
from labelrouter.models.reranker import Rerankers
from labelrouter.models.router import Router
from labelrouter.store.base import Store
from labelrouter.store.records import decode_embedding
from labelrouter.store.rows import ExampleRow
from labelrouter.training.policy import TrainingPolicy


@dataclass
class RunCache:
    """What one training run has read or loaded once, for every stage after it."""

    rows: dict[str, ExampleRow] | None = None  # this run's examples by id (`read_examples`)
    vectors: dict[str, dict[str, bytes]] = field(default_factory=dict)  # a candidate encoder's, by example id
    encoders: dict[str, Encoder] = field(default_factory=dict)
    routers: dict[str, Router] = field(default_factory=dict)
    rerankers: Rerankers | None = None


@dataclass
class TrainingContext:
    """Dependencies: what a stage needs to read and write, the run's tuning (`policy`) and what it has read
    once (`cache`). Data moves through state (example ids, versions) and the store (embeddings), so a run
    can be checkpointed and resumed."""

    store: Store
    encoder: Encoder
    router: Router  # labels, description vectors, scoring parameters (its head is the cold-start one)
    registry: ModelRegistry
    # Each example's document analysed once per context, not once per stage (fit, calibrate, pull,
    # evaluate, refit each transform them); the stages that read documents activate it.
    analysis: AnalysisCache = field(default_factory=AnalysisCache)
    # Where the analyses are kept between runs (`run_training` saves them; `build_training_context` loads
    # them), so a nightly run analyses only the mail that arrived since; None: not kept.
    analysis_path: Path | None = None
    cache_dir: Path | None = None  # where candidate encoders and rerankers are unpacked (`unpack_dir`)
    progress: Callable[[str], None] = field(default=lambda _message: None)
    policy: TrainingPolicy = field(default_factory=lambda: TrainingPolicy())
    cache: RunCache = field(default_factory=lambda: RunCache())

    def __post_init__(self) -> None:
        if self.router.reranker_for is None:  # a head that names a reranker is scored with it (loaded on use)
            self.router.reranker_for = lambda reranker: self.rerankers(reranker)

    @property
    def unpack_dir(self) -> Path:
        """Where candidate encoders and rerankers are unpacked: `cache_dir`, else one temporary folder."""
        if self.cache_dir is None:
            self.cache_dir = Path(tempfile.mkdtemp(prefix="labelrouter-models-"))
        return self.cache_dir

    @property
    def rerankers(self) -> Rerankers:
        """Cross-encoders of the registry (the current bundle's, a candidate's), loaded once each."""
        if self.cache.rerankers is None:
            self.cache.rerankers = Rerankers(self.registry.encoders, self.unpack_dir,
                                        device=getattr(self.encoder, "device", "cpu"))
        return self.cache.rerankers

    @property
    def labels(self) -> LabelSet:
        return self.router.labels

    def read_examples(self) -> list[ExampleRow]:
        """Every stored example of this context's encoder, read once per run (`mine_feedback` reads them;
        the stages after it look theirs up here instead of reading the whole table again: six reads of
        10,000 rows were a second of a run)."""
        rows = self.store.examples(self.encoder.version)
        self.cache.rows = {r["example_id"]: r for r in rows}
        self.cache.vectors.clear()
        return rows

    def examples(self, ids: list[str]) -> list[ExampleRow]:
        """Stored examples by id, in the order of `ids` (embedded by this context's encoder)."""
        found = self.cache.rows if self.cache.rows is not None else {r["example_id"]: r for r in self.read_examples()}
        missing = [i for i in ids if i not in found]
        if missing:
            raise ValueError(f"{len(missing)} examples of this training run are no longer in the store")
        return [found[i] for i in ids]

    def matrix(self, ids: list[str], encoder_version: str | None = None) -> tuple[np.ndarray, list[str], list[ExampleRow]]:
        """The examples' vectors (by `encoder_version` when it is another encoder: a candidate's), labels
        and rows."""
        rows = self.examples(ids)
        if encoder_version and encoder_version != self.encoder.version:
            if encoder_version not in self.cache.vectors:  # read once per run, not by each stage that needs them
                self.cache.vectors[encoder_version] = self.store.example_vectors(encoder_version)
            vectors = self.cache.vectors[encoder_version]
            missing = [r["example_id"] for r in rows if r["example_id"] not in vectors]
            if missing:
                raise ValueError(f"{len(missing)} examples of this run have no vector of the candidate encoder")
            embeddings = [vectors[r["example_id"]] for r in rows]
        else:
            embeddings = [r["embedding"] for r in rows]
        return np.vstack([decode_embedding(e) for e in embeddings]).astype(np.float32), [r["label"] for r in rows], rows

    def encoder_for(self, version: str) -> Encoder:
        """This context's encoder, or a candidate one from the registry (loaded once)."""
        if version == self.encoder.version:
            return self.encoder
        if version not in self.cache.encoders:
            path, name = self.registry.encoders.unpack(version, self.unpack_dir)
            self.cache.encoders[version] = Encoder(path, name=name, device=self.encoder.device,
                                              batch_size=self.encoder.batch_size)
        return self.cache.encoders[version]

    def router_for(self, version: str | None) -> Router:
        """The router whose label vectors `version`'s encoder made (this context's for its own encoder),
        reranking with whichever cross-encoder the head it is given names."""
        if not version or version == self.encoder.version:
            return self.router
        if version not in self.cache.routers:
            encoder = self.encoder_for(version)
            index = LabelIndex.build(self.labels, encoder)
            self.cache.routers[version] = dataclasses.replace(self.router, index=index, encoder_version=encoder.version,
                                                         _active=None)
        return self.cache.routers[version]


def texts(rows: list[ExampleRow]) -> list[str]:
    """The examples' embedded texts (what a reranker reads beside the label's), their document when expired."""
    return [r.get("embedded_text") or r.get("document") or "" for r in rows]


def documents(rows: list[ExampleRow]) -> list[str]:
    """The examples' documents; one whose text retention expired (or stored before documents were) falls
    back to its embedded text, then to nothing: its lexical features are what is left of it."""
    return [r.get("document") or r.get("embedded_text") or "" for r in rows]
