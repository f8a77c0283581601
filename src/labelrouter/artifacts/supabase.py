"""Artifacts in Supabase Storage through the official `supabase` client (bucket `models`, keys under
`label-router/`). The service-role key comes from the environment only (`SUPABASE_SERVICE_ROLE_KEY`).

Storage has no rename and no multi-object transaction; the registry writes a bundle's files, then its
manifest, and moves the pointer only after reading the bundle back, so a half-finished upload is never
current. Tested against an HTTP-level fake of the Storage API (`tests/fake_supabase_storage.py`); see
docs/models.md for what has not been run against a live project.
"""

from __future__ import annotations

import hashlib
from typing import Any

from labelrouter.artifacts.base import ArtifactNotFound, check_key
from labelrouter.errors import ModelArtifactError

PAGE = 1000  # Storage lists at most this many entries per request


def _status(exc: Exception) -> str:
    return str(getattr(exc, "status", "") or getattr(exc, "code", ""))


class SupabaseArtifacts:
    def __init__(self, client: Any, *, bucket: str = "models", prefix: str = "label-router/", url: str = ""):
        self.client, self.bucket, self.url = client, bucket, url
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""

    @classmethod
    def connect(cls, url: str, key: str, *, bucket: str = "models", prefix: str = "label-router/",
                http_client: Any = None, timeout_s: float = 60.0) -> SupabaseArtifacts:
        import httpx
        from supabase import ClientOptions, create_client

        # Our own httpx client: the library's timeout and verify arguments are deprecated in its favour.
        options = ClientOptions(httpx_client=http_client or httpx.Client(timeout=timeout_s))
        try:
            client = create_client(url, key, options)
        except Exception as exc:  # noqa: BLE001 - a malformed URL or key: one line, no traceback
            raise ModelArtifactError(f"cannot set up Supabase Storage at {url}: {exc}") from None
        return cls(client, bucket=bucket, prefix=prefix, url=url)

    @property
    def _bucket(self) -> Any:
        return self.client.storage.from_(self.bucket)

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        from storage3.exceptions import StorageApiError

        try:
            return fn(*args, **kwargs)
        except StorageApiError as exc:
            if _status(exc) == "404" or "not_found" in str(getattr(exc, "code", "")).lower() \
                    or "not found" in str(exc).lower():
                raise ArtifactNotFound(f"{self.describe()}: {what}: not found") from None
            raise ModelArtifactError(f"{self.describe()}: {what}: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - network down, TLS, timeouts: one line
            raise ModelArtifactError(f"{self.describe()}: {what}: {type(exc).__name__}: {exc}") from None

    def read(self, key: str) -> bytes:
        return self._call(f"reading {key}", self._bucket.download, self.prefix + check_key(key))

    def write(self, key: str, data: bytes) -> None:
        self._call(f"writing {key}", self._bucket.upload, self.prefix + check_key(key), data,
                   {"upsert": "true", "content-type": "application/octet-stream", "cache-control": "no-cache"})

    def _entries(self, folder: str) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = []
        while True:
            page = self._call(f"listing {folder}", self._bucket.list, folder.rstrip("/"),
                              {"limit": PAGE, "offset": len(entries), "sortBy": {"column": "name", "order": "asc"}})
            entries.extend(page)
            if len(page) < PAGE:
                return entries

    def list(self, prefix: str) -> list[str]:
        keys: list[str] = []
        folders = [self.prefix + prefix]
        while folders:
            folder = folders.pop()
            base = folder if folder.endswith("/") else folder + "/"
            for entry in self._entries(base):
                name = f"{base}{entry['name']}"
                if entry.get("id") is None:  # a folder: Storage lists one level at a time
                    folders.append(name + "/")
                else:
                    keys.append(name[len(self.prefix):])
        return sorted(keys)

    def delete(self, prefix: str) -> None:
        keys = self.list(prefix) if prefix.endswith("/") else [prefix]
        for start in range(0, len(keys), PAGE):
            chunk = [self.prefix + k for k in keys[start : start + PAGE]]
            if chunk:
                self._call(f"deleting {prefix}", self._bucket.remove, chunk)

    def stamp(self, key: str) -> str | None:
        """The pointer object's content hash: Storage has no cheap change time we can trust across
        replicas, and the pointer is a few bytes."""
        try:
            return hashlib.sha256(self.read(key)).hexdigest()
        except ArtifactNotFound:
            return None

    def describe(self) -> str:
        return f"supabase storage {self.url.rstrip('/')}/{self.bucket}/{self.prefix}"
