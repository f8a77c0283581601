"""The training graph's tuning: how examples are split, how much data a run needs, what the gate asks of a
candidate and what the fallback and archive thresholds aim at. Frozen, like setfit's `TrainingArguments`:
a run reads it and never changes it; `build_training_context` fills it from settings and overrides."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Literal

from labelrouter.settings import MIN_COVERAGE
from labelrouter.training.budget import Budget


@dataclass(frozen=True)
class TrainingPolicy:
    val_fraction: float = 0.2
    # A handful of examples is enough to learn from: a user who has just corrected eight mistakes expects
    # the next ones to go right, and a plain text classifier would already have learned from them
    # (validation takes every other new example of a label and a label's lone one, so eight leave three or
    # four to train on; the gate judges on what it can, and a candidate is promoted unless measurably worse).
    min_train: int = 3
    min_val: int = 2
    # Validation is at least this many of the examples the current head has not learned, when there are that
    # many to hold out (`splits.learnable_holdout`): the temperature, the pull and the thresholds are fitted on it.
    min_fair_val: int = 50
    min_important: int = 5  # flagged and unflagged messages each, in train, before an important head is fit
    # Top-1 a candidate with a new encoder must gain over the current bundle (re-embedding every example is
    # not done for less). A head-only candidate knows everything the current head learned and more: it is
    # promoted unless measurably worse (`gate`).
    promote_margin: float = 0.0
    target_precision: float = 0.90  # of non-fallback decisions, for the refit threshold
    min_coverage: float = MIN_COVERAGE  # ... unless that would send more of the mail to the fallback
    fallback_on: str = "auto"  # the statistic the threshold is on: chosen on validation, or pinned
    archive_target_precision: float = 0.97  # archiving hides mail: a stricter target for the archive threshold
    # The retrieval stages (`training.retrieval_stage`): run only when asked (`labelrouter train --stages`).
    stages: frozenset[str] = frozenset({"head"})
    retrieval_budget: Budget = field(default_factory=Budget)
    retrieval_weighting: Literal["flat", "hierarchy"] = "hierarchy"
    min_retrieval: int = 200  # training examples before the bi-encoder or the reranker is trained
    rerank_k: int = 8  # candidates the cross-encoder rescores (`training.rerank_stage`)


POLICY_FIELDS = frozenset(f.name for f in fields(TrainingPolicy))
