"""The offline summarizer: subject plus the lead of the cleaned body. Deterministic, no network."""

from __future__ import annotations

import re

from labelrouter.state import EmailMessage, Summary

SOURCE = "offline"
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def lead(text: str, max_chars: int = 300) -> str:
    """The first sentences of `text` that fit in `max_chars` (at least one, cut if it is longer)."""
    text = " ".join(text.split())
    out = ""
    for sentence in _SENTENCE_END.split(text):
        candidate = f"{out} {sentence}".strip()
        if len(candidate) > max_chars:
            break
        out = candidate
    return out or text[:max_chars]


def offline_summary(message: EmailMessage, max_chars: int = 300) -> Summary:
    body_lead = lead(message.body, max_chars)
    subject = message.subject.strip()
    text = f"{subject} — {body_lead}" if subject and body_lead else subject or body_lead
    return Summary(text=text, source=SOURCE)


class OfflineSummarizer:
    def summarize(self, message: EmailMessage) -> tuple[Summary, list[str]]:
        return offline_summary(message), []
