"""A fake chat model that supports structured output (the stock fakes do not)."""

from __future__ import annotations

import json
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import RunnableLambda
from pydantic import Field


class ScriptedChatModel(BaseChatModel):
    """Plays a script: each call returns the next summary string or raises the next exception."""

    script: list[Any] = Field(default_factory=list)
    prompts: list[list[BaseMessage]] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "scripted-fake"

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        self.prompts.append(list(messages))
        item = self.script[min(len(self.prompts), len(self.script)) - 1]
        if isinstance(item, BaseException):
            raise item
        content = item if isinstance(item, str) and item.startswith("{") else json.dumps({"summary": item})
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=content))])

    def with_structured_output(self, schema: Any, **kwargs: Any):  # type: ignore[override]
        return self | RunnableLambda(lambda message: schema.model_validate_json(message.content))
