"""Where model bundles live: a key → bytes store with two implementations.

`LocalArtifacts` (a directory, the embedded default) and `SupabaseArtifacts` (Supabase Storage, bucket
`models`, keys under `label-router/`). Keys are `/`-separated relative paths; what they mean is the model
registry's business (`labelrouter.models.registry`), the only module that knows the layout. A write
replaces one object whole; there is no multi-object transaction, so the registry writes a bundle's
manifest last and moves the `current` pointer only after reading the bundle back.
"""

from __future__ import annotations

import re
from typing import Protocol

from labelrouter.errors import ModelArtifactError

_KEY = re.compile(r"[A-Za-z0-9._+-]+(/[A-Za-z0-9._+-]+)*")


class ArtifactNotFound(ModelArtifactError):
    """No object under that key."""


def check_key(key: str) -> str:
    """A key is plain path segments: nothing absolute, nothing that climbs out of the store."""
    if not _KEY.fullmatch(key) or any(part in (".", "..") for part in key.split("/")):
        raise ModelArtifactError(f"{key[:120]!r} is not an artifact key")
    return key


class ArtifactStore(Protocol):
    def read(self, key: str) -> bytes:
        """The object's bytes; ArtifactNotFound when there is none, ModelArtifactError when unreachable."""

    def write(self, key: str, data: bytes) -> None:
        """Create or replace one object whole."""

    def list(self, prefix: str) -> list[str]:
        """Keys under `prefix` (a folder, ending in '/'), recursively, sorted."""

    def delete(self, prefix: str) -> None:
        """Remove every object under `prefix` (a folder) or the object named `prefix`."""

    def stamp(self, key: str) -> str | None:
        """Something that changes when the object changes (None: no such object); cheap to poll."""

    def describe(self) -> str:
        """Where this store is, for messages (never a secret)."""
