"""The fleet file: which mailboxes the workers label, each a set of settings over the environment's.

```json
{"mailboxes": {
  "alice": {"home": "/srv/labelrouter/alice", "mailbox": "gmail", "gmail_user": "alice@example.com"},
  "shared-inbox": {"home": "/srv/labelrouter/shared", "mailbox_path": "/srv/mail/shared"}
}}
```

Keys are the settings' own names (`LABELROUTER_<NAME>` lowercased); unset ones come from the worker's
environment. Secrets are never read from this file (they come from the environment only), and two
mailboxes may not share a home, a store or a Maildir: their decisions would mix.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from labelrouter.errors import ConfigError
from labelrouter.settings import Settings, load_settings

NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
# Fleet-wide settings: a mailbox entry cannot change where the queue or the leases are.
FLEET_WIDE = {"broker_url", "fleet_namespace", "fleet_path", "fleet_lease_s", "fleet_visibility_timeout_s"}


def _secret_fields() -> set[str]:
    return {name for name, field in Settings.model_fields.items()
            if field.annotation is not None and SecretStr in getattr(field.annotation, "__args__", (field.annotation,))}


def load_fleet(path: Path, base: dict[str, Any] | None = None) -> dict[str, Settings]:
    """Mailbox name → its settings; every problem in the file is a ConfigError that names it."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"no fleet file at {path}: it names the mailboxes the workers label "
                          "(docs/fleet.md); set LABELROUTER_FLEET_PATH to use another") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"cannot read the fleet file {path}: {exc}") from None
    entries = data.get("mailboxes") if isinstance(data, dict) else None
    if not isinstance(entries, dict) or not entries:
        raise ConfigError(f"{path}: expected {{\"mailboxes\": {{NAME: {{settings}}, ...}}}} with at least one mailbox")
    known, secret = set(Settings.model_fields), _secret_fields()
    fleet: dict[str, Settings] = {}
    for name, entry in entries.items():
        if not NAME.match(str(name)):
            raise ConfigError(f"{path}: mailbox name {name!r} must be lowercase letters, digits, '-' or '_'")
        if not isinstance(entry, dict):
            raise ConfigError(f"{path}: mailbox {name!r} must be an object of settings")
        unknown = sorted(set(entry) - known)
        if unknown:
            raise ConfigError(f"{path}: mailbox {name!r} has unknown settings {unknown}")
        forbidden = sorted(set(entry) & (secret | FLEET_WIDE))
        if forbidden:
            raise ConfigError(f"{path}: mailbox {name!r} sets {forbidden}: secrets come from the environment only, "
                              "and the broker settings are the fleet's, not one mailbox's")
        if "home" not in entry:
            raise ConfigError(f"{path}: mailbox {name!r} needs its own \"home\"")
        try:
            fleet[name] = load_settings(**{**(base or {}), **entry})
        except ConfigError as exc:
            raise ConfigError(f"{path}: mailbox {name!r}: {exc}") from None
    _refuse_shared(path, fleet)
    return fleet


def gmail_account(settings: Settings) -> str:
    """One Gmail account: its token and user (the key of its shared quota, and of the sharing check)."""
    return f"{settings.resolved_gmail_token_path.resolve()}#{settings.gmail_user}"


def _refuse_shared(path: Path, fleet: dict[str, Settings]) -> None:
    from labelrouter.store import POSTGRES_SCHEMES, sqlite_path

    seen: dict[tuple[str, str], str] = {}
    for name, settings in fleet.items():
        keys = [("home", str(settings.home.resolve()))]
        url = settings.database_url
        if url and url.startswith(POSTGRES_SCHEMES):
            keys.append(("store", f"{url}#{settings.database_schema or 'public'}"))
        else:  # the file `open_store` would open (a path or sqlite:///PATH)
            keys.append(("store", str((sqlite_path(url) if url else settings.resolved_db_path).resolve())))
        if settings.mailbox == "maildir":
            keys.append(("Maildir", str(settings.resolved_mailbox_path.resolve())))
        else:
            keys.append(("Gmail account", gmail_account(settings)))
        for key in keys:
            if key in seen:
                raise ConfigError(f"{path}: mailboxes {seen[key]!r} and {name!r} share a {key[0]} ({key[1]})")
            seen[key] = name
