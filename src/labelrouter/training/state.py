"""The training graph's state: only serializable values (example ids, versions, metrics, the decision)."""



from __future__ import annotations

import operator
from typing import Annotated, Any

from pydantic import BaseModel, Field


def _merge(left: dict[str, Any], right: dict[str, Any]) -> dict[str, Any]:
    return {**left, **right}


class TrainingState(BaseModel):
    n_examples: int = 0
    dropped_unknown_labels: int = 0
    example_ids: list[str] = Field(default_factory=list)
    train_ids: list[str] = Field(default_factory=list)
    val_ids: list[str] = Field(default_factory=list)
    n_unlearned: int = 0  # examples added or changed since the current head was fit (none: nothing to train)
    # The current head's dense scale, reused until the training set doubles (`_known_scale`); None: try.
    known_scale: float | None = None
    scale_chosen_on: int = 0
    current_version: str = ""
    candidate_version: str | None = None
    candidate_encoder: str | None = None  # a fine-tuned encoder this run is judging (`train_bi_encoder`)
    candidate_reranker: str | None = None  # a cross-encoder in the candidate bundle (`train_reranker`)
    current_reranker: str | None = None  # the current bundle's cross-encoder (`distill_bi_encoder`, `carry_reranker`)
    stage_reports: Annotated[dict[str, Any], _merge] = Field(default_factory=dict)
    important_val_ids: list[str] = Field(default_factory=list)
    metrics: dict[str, dict[str, Any]] = Field(default_factory=dict)
    promoted: bool = False
    decision: str = ""
    skipped: Annotated[list[str], operator.add] = Field(default_factory=list)
