"""Run dependencies of the inference graph, built once and handed to nodes through `runtime.context`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

import numpy as np

from labelrouter.labels import LabelSet, load_label_set
from labelrouter.mail.mailbox import Mailbox
from labelrouter.models.batching import MicroBatcher
from labelrouter.models.encoder import Encoder, encoder_for
from labelrouter.models.head import ColdStartHead, CurrentHead, Head
from labelrouter.models.label_index import LabelIndex
from labelrouter.models.scoring import ScoringParams
from labelrouter.settings import Settings
from labelrouter.store.base import Store
from labelrouter.summarize import OfflineSummarizer, Summarizer, gemini_summarizer

Mode = Literal["apply", "dry-run", "decide"]


@dataclass
class LabelerContext:
    labels: LabelSet
    encoder: Encoder
    index: LabelIndex
    summarizer: Summarizer
    params: ScoringParams = field(default_factory=ScoringParams)
    head: Head = field(default_factory=ColdStartHead)
    mode: Mode = "decide"  # decide: explain only; dry-run: say what apply would do; apply: do it and persist
    mailbox: Mailbox | None = None
    mailbox_ids: dict[str, str] = field(default_factory=dict)  # label name → mailbox label id
    # Mailbox label ids that count as "ours": this config's and every label labelrouter created before.
    known_label_ids: set[str] = field(default_factory=set)
    archive_threshold_default: float = 0.8
    store: Store | None = None
    batcher: MicroBatcher | None = None
    snippet_chars: int = 1_500
    _active: tuple[str, LabelIndex] | None = field(default=None, repr=False)

    @property
    def model_version(self) -> str:
        return f"{self.encoder.version}+head:{self.head.version}"

    @property
    def active_index(self) -> LabelIndex:
        """Label vectors in use: descriptions, with the current head's refreshed vectors where it has them."""
        key = self.head.version
        if self._active is None or self._active[0] != key:
            self._active = (key, self.index.with_vectors(getattr(self.head, "label_vectors", {}) or {}))
        return self._active[1]

    @property
    def scoring(self) -> ScoringParams:
        """Scoring parameters; a promoted head brings its own refit fallback threshold."""
        threshold = (getattr(self.head, "thresholds", None) or {}).get("fallback")
        return self.params if threshold is None else dataclasses.replace(self.params, threshold=float(threshold))

    def archive_threshold(self, label: str) -> float | None:
        """Confidence a label that archives needs to take the message out of the inbox (None: it does not
        archive). The label's own `archive_confidence`, else the current head's refit one, else the setting;
        never below the fallback threshold."""
        entry = self.labels.get(label)
        if not entry.archive:
            return None
        head_value = (getattr(self.head, "thresholds", None) or {}).get("archive")
        value = entry.archive_confidence if entry.archive_confidence is not None else (
            float(head_value) if head_value is not None else self.archive_threshold_default)
        return max(float(value), self.scoring.threshold)

    def embed(self, text: str) -> np.ndarray:
        if self.batcher is not None:
            return self.batcher.encode_one(text)
        return self.encoder.encode([text])[0]


def build_summarizer(settings: Settings) -> Summarizer:
    if settings.use_gemini():
        assert settings.google_api_key is not None
        return gemini_summarizer(
            settings.gemini_model, settings.google_api_key.get_secret_value(), attempts=settings.llm_attempts,
            backoff_s=settings.llm_backoff_s, timeout_s=settings.llm_timeout_s,
        )
    return OfflineSummarizer()


def build_context(settings: Settings, *, mode: Mode = "decide", mailbox: Mailbox | None = None,
                  store: Store | None = None, labels: LabelSet | None = None) -> LabelerContext:
    """Everything from settings: labels, encoder (cached per process), label vectors, head, summarizer."""
    labels = labels or load_label_set(settings.labels_path)
    encoder = encoder_for(settings)
    head = CurrentHead(settings.resolved_models_dir, embedder=encoder.version, dim=encoder.dim)
    params = ScoringParams(settings.top_k, settings.sim_center, settings.sim_scale, settings.fallback_threshold)
    # Only a real run creates missing labels; a dry run must leave the mailbox exactly as it was.
    mailbox_ids = mailbox.ensure_labels(labels.names, create=mode == "apply") if mailbox is not None else {}
    known = set(mailbox_ids.values()) | (mailbox.our_label_ids() if mailbox is not None else set())
    return LabelerContext(
        labels=labels, encoder=encoder, summarizer=build_summarizer(settings),
        index=LabelIndex.build(labels, encoder, cache_dir=settings.resolved_cache_dir),
        params=params, head=head, mode=mode, mailbox=mailbox, mailbox_ids=mailbox_ids, known_label_ids=known,
        store=store, snippet_chars=settings.snippet_chars, archive_threshold_default=settings.archive_threshold,
    )


@lru_cache(maxsize=1)
def default_context() -> LabelerContext:
    """Context from the environment's settings, for hosts that cannot pass one (e.g. `langgraph dev`)."""
    from labelrouter.settings import load_settings

    return build_context(load_settings(), mode="decide")


def resolve_context(runtime: Any) -> LabelerContext:
    """The context a node runs with: the caller's, or the default built once from settings."""
    ctx = getattr(runtime, "context", None)
    return ctx if isinstance(ctx, LabelerContext) else default_context()
