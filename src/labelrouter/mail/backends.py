"""The mailbox the settings name, built in one place for the CLI and the worker fleet."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def open_mailbox(settings: Any, path: Path | None = None, *, budget: Any = None) -> Any:
    """A Maildir (`path`, default the settings' mailbox path), or Gmail when `settings.mailbox` says so.
    `budget` replaces Gmail's in-process quota budget (the fleet passes one shared through Redis)."""
    if settings.mailbox == "gmail":
        from labelrouter.mail.gmail import GmailApi, GmailMailbox, QuotaBudget, gmail_service

        budget = budget or QuotaBudget(settings.gmail_units_per_minute)
        api = GmailApi(gmail_service(settings.resolved_gmail_token_path), user=settings.gmail_user, budget=budget)
        return GmailMailbox(api, mapping_path=settings.mailbox_ids_path, state_dir=settings.home / "gmail")
    from labelrouter.mail.maildir import LocalMaildir

    return LocalMaildir(path or settings.resolved_mailbox_path, create=False)
