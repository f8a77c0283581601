"""Artifacts in a local directory (the embedded default: `<home>/models`). Writes are atomic per file."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from labelrouter.artifacts.base import ArtifactNotFound, check_key
from labelrouter.errors import ModelArtifactError
from labelrouter.util.files import private_dir


class LocalArtifacts:
    def __init__(self, root: Path):
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        path = (self.root / check_key(key)).resolve()
        root = self.root.resolve()
        if path != root and not path.is_relative_to(root):  # a symlink out of the store
            raise ModelArtifactError(f"artifact {key!r} points outside {root}")
        return path

    def read(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise ArtifactNotFound(f"{self.root / key}: not found") from None
        except OSError as exc:
            raise ModelArtifactError(f"{self.root / key}: unreadable ({exc.strerror})") from None

    def write(self, key: str, data: bytes) -> None:
        path = self._path(key)
        private_dir(path.parent)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o600)
            tmp.replace(path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise ModelArtifactError(f"cannot write {path}: {exc.strerror}") from None

    def list(self, prefix: str) -> list[str]:
        base = self.root / prefix.rstrip("/") if prefix else self.root
        if not base.is_dir():
            return []
        return sorted(str(p.relative_to(self.root)) for p in base.rglob("*")
                      if p.is_file() and not p.name.startswith("."))

    def delete(self, prefix: str) -> None:
        path = self.root / prefix.rstrip("/")
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)

    def stamp(self, key: str) -> str | None:
        try:
            stat = self._path(key).stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return f"{stat.st_mtime_ns}:{stat.st_size}:{stat.st_ino}"

    def describe(self) -> str:
        return str(self.root)
