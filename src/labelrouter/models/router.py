"""The Router: labels, their vectors, the head and the scoring parameters, as one object.

Everything that decides or measures a label goes through it: the `label_router` node, `labelrouter eval`,
the training graph's evaluation and (next) replay. It says what text a message is embedded as, scores a
batch of embeddings (`models.scoring.score`: similarities → router weights × head weights → argmax or
fallback) and explains one row as the `Routing` the graph state carries. When the current bundle brings a
cross-encoder (`head.rerank`, trained by `labelrouter train --stages rerank`), the k best labels are
rescored by it (`models.scoring.rerank`); `reranker_for` loads it by version.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from labelrouter.labels import LabelSet
from labelrouter.models.document import message_document
from labelrouter.models.head import ColdStartHead, Head
from labelrouter.models.label_index import LabelIndex
from labelrouter.models.scoring import Scores, ScoringParams, rerank, score, top_candidates
from labelrouter.state import Candidate, EmailMessage, Routing, Summary
from labelrouter.summarize.offline import SOURCE as OFFLINE_SOURCE


def scoring_params(settings: Any) -> ScoringParams:
    """The scoring parameters a settings object names (the one place they are read from settings)."""
    return ScoringParams(settings.top_k, settings.sim_center, settings.sim_scale, settings.fallback_threshold,
                         settings.head_k)


def embedding_text(message: EmailMessage, summary: Summary | None, snippet_chars: int) -> str:
    """What the router embeds: subject, the summary, and the start of the body.

    The body snippet is always there, so an LLM summary can shift the vector but never decide alone
    (a message cannot talk its way into a label through the summarizer). The offline summary is the
    body's own lead, so it is left out rather than counted twice.
    """
    parts = [message.subject.strip()]
    if summary is not None and summary.source != OFFLINE_SOURCE:
        parts.append(summary.text.strip())
    parts.append(message.body[:snippet_chars].strip())
    return "\n".join(p for p in parts if p)


def document_of(message: EmailMessage) -> str:
    """What the head reads lexical features from: addresses, subject and the whole capped body."""
    return message_document(message.sender, message.recipients, message.subject, message.body)


class Reranker(Protocol):
    """A cross-encoder (`models.reranker`): rescores each message's best candidates."""

    version: str

    def rerank(self, texts: list[str], candidates: np.ndarray, labels: LabelSet) -> np.ndarray:
        """(n,) texts and (n, k) candidate label indices → (n, k) logits (higher: more likely the label)."""


@dataclass
class Router:
    labels: LabelSet
    index: LabelIndex  # description vectors; the head's refreshed vectors replace some while it is current
    head: Head = field(default_factory=ColdStartHead)
    params: ScoringParams = field(default_factory=ScoringParams)
    encoder_version: str = ""
    snippet_chars: int = 1_500
    archive_default: float = 0.8
    # Loads the cross-encoder a bundle names (`models.reranker.Rerankers`); None: never rerank.
    reranker_for: Callable[[str], Reranker] | None = None
    _active: tuple[str, LabelIndex] | None = field(default=None, repr=False)

    @classmethod
    def from_settings(cls, settings: Any, labels: LabelSet, index: LabelIndex, head: Head | None = None) -> Router:
        return cls(labels, index, head or ColdStartHead(), scoring_params(settings), index.encoder_version,
                   settings.snippet_chars, settings.archive_threshold)

    def with_head(self, head: Head, *, threshold: float | None = None, fallback_on: str = "confidence") -> Router:
        """The same router with another head (and optionally a fixed fallback threshold on `fallback_on`):
        how training compares a candidate with the current head on the same validation set."""
        params = self.params if threshold is None else \
            dataclasses.replace(self.params, threshold=threshold, fallback_on=fallback_on)
        return dataclasses.replace(self, head=head, params=params, _active=None)

    # -- what is in use ------------------------------------------------------------------------------
    @property
    def model_version(self) -> str:
        spec = self.rerank_spec
        return f"{self.encoder_version}+head:{self.head.version}" + (f"+rerank:{spec.version}" if spec else "")

    @property
    def rerank_spec(self) -> Any:
        """The current bundle's reranker, when it has one and this router can load it."""
        spec = getattr(self.head, "rerank", None)
        return spec if spec is not None and self.reranker_for is not None else None

    @property
    def active_index(self) -> LabelIndex:
        """Label vectors in use: descriptions, with the current head's refreshed vectors where it has them."""
        key = self.head.version
        if self._active is None or self._active[0] != key:
            self._active = (key, self.index.with_vectors(self.head.label_vectors))
        return self._active[1]

    @property
    def scoring(self) -> ScoringParams:
        """Scoring parameters; a promoted head brings its own refit fallback threshold: on the confidence
        (`thresholds.fallback`), or on the margin (`thresholds.fallback_margin`) when its policy chose that."""
        margin = self.head.thresholds.get("fallback_margin")
        if margin is not None:
            return dataclasses.replace(self.params, threshold=float(margin), fallback_on="margin")
        threshold = self.head.thresholds.get("fallback")
        return self.params if threshold is None else \
            dataclasses.replace(self.params, threshold=float(threshold), fallback_on="confidence")

    def archive_threshold(self, label: str) -> float | None:
        """Confidence a label that archives needs to take the message out of the inbox (None: it does not
        archive). The label's own `archive_confidence`, else the current head's refit one, else the setting;
        never below a fallback threshold on the confidence."""
        entry = self.labels.get(label)
        if not entry.archive:
            return None
        head_value = self.head.thresholds.get("archive")
        value = entry.archive_confidence if entry.archive_confidence is not None else (
            float(head_value) if head_value is not None else self.archive_default)
        scoring = self.scoring
        return max(float(value), scoring.threshold) if scoring.fallback_on == "confidence" else float(value)

    # -- scoring -------------------------------------------------------------------------------------
    def text_of(self, message: EmailMessage, summary: Summary | None) -> str:
        return embedding_text(message, summary, self.snippet_chars)

    def score(self, embeddings: np.ndarray, documents: list[str] | None = None,
              texts: list[str] | None = None) -> Scores:
        """A batch: (n, dim) message vectors (and their documents, for the head's lexical features; their
        embedded texts, for the bundle's reranker) → similarities, router and head weights, decision."""
        embeddings = np.atleast_2d(embeddings)
        scores = self.decide(self.active_index.similarities(embeddings),
                             self.head.weights(embeddings, self.labels.names, documents))
        spec = self.rerank_spec
        if spec is None:
            return scores
        if texts is None or len(texts) != len(embeddings):
            raise ValueError("this bundle reranks with a cross-encoder: score() needs the messages' embedded texts")
        assert self.reranker_for is not None
        candidates = top_candidates(scores, spec.k, self.index.routable)
        logits = self.reranker_for(spec.version).rerank(list(texts), candidates, self.labels)
        return rerank(scores, candidates, logits, spec.a, spec.b, self.scoring, self.index.routable,
                      has_fallback=self.labels.fallback is not None)

    def decide(self, similarities: np.ndarray, head_weights: np.ndarray) -> Scores:
        """Decisions from similarities to the active label vectors and head weights already computed: how
        training tries several head weightings of one batch without scoring it again."""
        return score(similarities, head_weights, self.scoring, self.index.routable,
                     has_fallback=self.labels.fallback is not None)

    def fallback_rule(self) -> str:
        """The fallback rule in force, in words, for explanations."""
        scoring = self.scoring
        below = (f"fallback below confidence {scoring.threshold:.3f}" if scoring.fallback_on == "confidence" else
                 f"fallback when the winner leads the runner-up by less than {scoring.threshold:.2f} points")
        policy = self.head.metrics.get("fallback_policy")
        if not isinstance(policy, dict) or not self.labels.fallback:
            source = "the setting fallback_threshold" if scoring.fallback_on == "confidence" and \
                self.head.thresholds.get("fallback") is None else "the current model's threshold"
            return f"{below} ({source})"
        if policy.get("bound") == "coverage":
            why = (f"lowered to keep coverage ≥ {policy['min_coverage']:.0%} on validation; precision there "
                   f"{policy['precision']:.0%}, below the {policy['target_precision']:.0%} target")
        else:
            why = (f"fit for precision ≥ {policy['target_precision']:.0%} on validation; coverage there "
                   f"{policy['coverage']:.0%}")
        if scoring.fallback_on == "margin":
            why += ("; on the margin by the setting fallback_on" if policy.get("pinned") else
                    "; the margin told right from wrong better than the confidence there")
        return f"{below} ({why})"

    # -- explanations --------------------------------------------------------------------------------
    def _routing(self, label: str, top_label: str, **values: Any) -> Routing:
        scoring = self.scoring
        return Routing(label=label, top_label=top_label, threshold=scoring.threshold, fallback_on=scoring.fallback_on,
                       archive_threshold=self.archive_threshold(label), model_version=self.model_version,
                       encoder_version=self.encoder_version, labels_hash=self.labels.fingerprint(), **values)

    def explain(self, scores: Scores, row: int, document: str | None = None) -> Routing:
        """One message's decision with every number behind it, rounded so final == router × head in JSON;
        with the message's document, the lexical features that pulled toward the top label."""
        names = self.labels.names
        top = int(scores.top[row])
        fallback = bool(scores.fallback[row]) and self.labels.fallback is not None
        router = {n: round(float(v), 4) for n, v in zip(names, scores.router[row], strict=True)}
        head = {n: round(float(v), 6) for n, v in zip(names, scores.head[row], strict=True)}
        final = {n: round(router[n] * head[n], 6) for n in names}
        candidates = [
            Candidate(label=names[j], similarity=round(float(scores.similarities[row, j]), 4),
                      router_weight=router[names[j]], head_weight=head[names[j]], final_score=final[names[j]])
            for j in sorted(np.nonzero(scores.candidates[row])[0], key=lambda j: -scores.similarities[row, j])
        ]
        return self._routing(
            self.labels.fallback if fallback else names[top], names[top],  # type: ignore[arg-type]
            router_weights=router, head_weights=head, final_scores=final, candidates=candidates,
            confidence=round(float(scores.confidence[row]), 6), margin=round(float(scores.margin[row]), 4),
            fallback=fallback, reason="below-threshold" if fallback else "argmax", rule=self.fallback_rule(),
            evidence=self.head.evidence(document, names[top]) if document is not None else [],
        )

    def no_content(self) -> Routing:
        """A message with no subject and no body text: nothing to route on, so the fallback label."""
        zeros = {name: 0.0 for name in self.labels.names}
        fallback = self.labels.fallback or self.labels.names[0]
        return self._routing(fallback, fallback, router_weights=zeros, head_weights={n: 1.0 for n in zeros},
                             final_scores=zeros, candidates=[], confidence=0.0, margin=0.0,
                             fallback=self.labels.fallback is not None, reason="no-content")

    def decided(self, label: str, reason: str) -> Routing:
        """A decision made by a rule rather than by scores (e.g. a sender rule): full confidence in `label`."""
        weights = {name: (100.0 if name == label else 0.0) for name in self.labels.names}
        return self._routing(label, label, router_weights=weights, head_weights={n: 1.0 for n in weights},
                             final_scores=dict(weights), candidates=[], confidence=1.0, margin=100.0,
                             fallback=False, reason=reason)
