"""Errors a user can cause. Each says what went wrong and what to do; the CLI prints it as one line."""

from __future__ import annotations


class LabelRouterError(Exception):
    """Base class: anything raised on purpose by labelrouter."""


class ConfigError(LabelRouterError):
    """A configuration file (labels, mailbox ids, settings) is missing or invalid."""


class MessageParseError(LabelRouterError):
    """A message could not be turned into a usable input (empty, not RFC 822, too large)."""


class ModelArtifactError(LabelRouterError):
    """A model artifact (head, label vectors) is missing, corrupt or made for other labels."""


class MailboxError(LabelRouterError):
    """The mailbox could not be read or changed."""


class StoreError(LabelRouterError):
    """The store (SQLite/Postgres) could not be opened or migrated."""
