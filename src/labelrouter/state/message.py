"""The input message, validated at the graph boundary."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator


class EmailMessage(BaseModel):
    """One email, already parsed and cleaned (see `labelrouter.mail.parse`)."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(min_length=1, description="Stable mailbox id (Maildir unique name, Gmail message id).")
    thread_id: str | None = Field(None, description="Conversation id when the mailbox has one.")
    rfc822_id: str | None = Field(None, description="The Message-ID header.")
    subject: str = ""
    sender: str = ""
    recipients: list[str] = Field(default_factory=list)
    date: datetime | None = None
    body: str = Field("", description="Plain text: HTML converted, quotes and signature stripped, capped.")
    snippet: str = Field("", description="The first characters of `body`, what the router embeds.")
    label_ids: list[str] = Field(default_factory=list, description="Mailbox label ids at processing time.")
    truncated: bool = Field(False, description="The body was cut to the size cap.")
    parse_warnings: list[str] = Field(default_factory=list, description="Defects found while parsing.")

    @field_validator("subject", "sender", "body", "snippet", mode="before")
    @classmethod
    def _none_to_empty(cls, value: object) -> object:
        return "" if value is None else value

    @property
    def has_content(self) -> bool:
        return bool(self.subject.strip() or self.body.strip())
