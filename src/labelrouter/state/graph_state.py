"""Typed state of the inference graph. Only serializable values: it is checkpointed and persisted."""

from __future__ import annotations

import operator
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, Field

from labelrouter.state.message import EmailMessage


class Summary(BaseModel):
    text: str = Field(description="Short neutral summary of the message.")
    source: str = Field(description="Which summarizer wrote it: 'offline' or 'gemini:<model>'.")


class Candidate(BaseModel):
    """One of the top-K retrieved labels."""

    label: str
    similarity: float = Field(description="Cosine similarity of message and label vectors.")
    router_weight: float = Field(ge=0, le=100)
    head_weight: float = Field(ge=0, le=1)
    final_score: float = Field(ge=0, le=100)


class Routing(BaseModel):
    """The label router's decision and everything that explains it (one entry per label, in label order)."""

    label: str
    top_label: str = Field(description="Argmax of final scores, before the fallback rule.")
    router_weights: dict[str, float]
    head_weights: dict[str, float]
    final_scores: dict[str, float]
    candidates: list[Candidate] = Field(description="Top-K by similarity and the head's own top labels, best "
                                                    "similarity first.")
    confidence: float = Field(ge=0, le=1, description="Winner's final score / 100.")
    margin: float = Field(description="Final score of top-1 minus top-2 (0–100 scale).")
    threshold: float = Field(description="The fallback threshold, on the confidence or on the margin (fallback_on).")
    fallback_on: Literal["confidence", "margin"] = Field(
        "confidence", description="What the threshold is compared with: the confidence (0–1), or the margin "
                                  "(0–100), when the model's fallback policy chose it on validation.")
    archive_threshold: float | None = Field(
        None, description="Confidence a label that archives needs before the message leaves the inbox.")
    fallback: bool
    reason: str = Field(description="Why this label: 'argmax', 'below-threshold' or 'no-content'.")
    rule: str = Field("", description="The fallback rule in force, in words (which threshold, and why it is "
                                      "that value).")
    evidence: list[tuple[str, float]] = Field(
        default_factory=list, description="The lexical features (words, bigrams, addresses) that pulled most "
                                          "toward the top label, with their pull on the head's logit.")
    model_version: str
    encoder_version: str
    labels_hash: str


class ApplyResult(BaseModel):
    status: Literal["applied", "unchanged", "dry-run", "skipped", "repaired", "shadow"]
    label: str
    archive: bool
    label_ids_before: list[str] = Field(default_factory=list)
    label_ids_after: list[str] = Field(default_factory=list)
    detail: str = ""


def _merge(left: dict[str, Any], right: dict[str, Any]) -> dict[str, Any]:
    return {**(left or {}), **(right or {})}


class LabelingInput(BaseModel):
    message: EmailMessage


class LabelingState(BaseModel):
    message: EmailMessage
    summary: Summary | None = None
    routing: Routing | None = None
    # The message vector the router used, and the text it was embedded from; persisted so training never
    # re-embeds with the same encoder and a new encoder can re-embed without the mailbox.
    embedding: list[float] | None = None
    embedded_text: str | None = None
    # What the head's lexical features are read from (`models.document.message_document`), persisted too.
    document: str | None = None
    applied: ApplyResult | None = None
    # Nodes return only their new errors; the reducer appends them.
    errors: Annotated[list[str], operator.add] = Field(
        default_factory=list, description="What degraded (e.g. LLM summarizer down)."
    )
    # What extension nodes add, keyed by extension name (merged, so several extensions may write).
    extensions: Annotated[dict[str, Any], _merge] = Field(default_factory=dict)


class LabelingOutput(BaseModel):
    message: EmailMessage
    summary: Summary | None = None
    routing: Routing | None = None
    applied: ApplyResult | None = None
    errors: list[str] = Field(default_factory=list)
    extensions: dict[str, Any] = Field(default_factory=dict)

    # What of the message a printed decision shows: never its body or snippet.
    EXPLAINED_MESSAGE_FIELDS: ClassVar[set[str]] = {"id", "subject", "sender", "date", "truncated", "parse_warnings"}

    def explanation(self) -> dict[str, Any]:
        """The JSON of one decision (`labelrouter label`, replay): the message's headers, the summary, every
        field of the routing at the top level, what apply did, errors and extension results."""
        data = self.model_dump(mode="json", include={"summary", "applied", "errors", "extensions"})
        return {"message": self.message.model_dump(mode="json", include=self.EXPLAINED_MESSAGE_FIELDS),
                "summary": data["summary"],
                **(self.routing.model_dump(mode="json") if self.routing is not None else {}),
                "applied": data["applied"], "errors": data["errors"], "extensions": data["extensions"]}
