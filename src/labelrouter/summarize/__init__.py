"""Summarizers: `summarize(message) -> (Summary, errors)`; errors say what degraded."""

from typing import Protocol

from labelrouter.state import EmailMessage, Summary
from labelrouter.summarize.llm import LLMSummarizer, gemini_summarizer
from labelrouter.summarize.offline import OfflineSummarizer, offline_summary


class Summarizer(Protocol):
    def summarize(self, message: EmailMessage) -> tuple[Summary, list[str]]: ...


__all__ = ["LLMSummarizer", "OfflineSummarizer", "Summarizer", "gemini_summarizer", "offline_summary"]
