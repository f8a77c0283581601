"""Versioned heads: promote, list, roll back. Layout and format: docs/scoring.md (`labelrouter.head/v1`).

`<models_dir>/head/history.json` lists promoted versions oldest first; the last one is current and is
also written to `current.json` (what inference reads). Writes go through a temporary file and a rename.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from labelrouter.errors import ModelArtifactError
from labelrouter.labels import write_json_atomic
from labelrouter.models.head import LinearHead


def _head_dir(models_dir: Path) -> Path:
    return models_dir / "head"


def history(models_dir: Path) -> list[str]:
    path = _head_dir(models_dir) / "history.json"
    if not path.exists():
        return []
    try:
        versions = json.loads(path.read_text(encoding="utf-8"))["promoted"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelArtifactError(f"{path}: unreadable promotion history ({exc})") from None
    return [str(v) for v in versions]


def _point_to(models_dir: Path, versions: list[str]) -> None:
    head_dir = _head_dir(models_dir)
    head_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(head_dir / "history.json", {"promoted": versions})
    if versions:
        write_json_atomic(head_dir / "current.json", {"version": versions[-1]})
    else:
        (head_dir / "current.json").unlink(missing_ok=True)  # back to the cold-start head


def stage(models_dir: Path, head: LinearHead) -> Path:
    """Write a candidate where inference never looks; `promote` moves it into place."""
    target = _head_dir(models_dir) / "candidates" / head.version
    head.save(target)
    return target


def promote(models_dir: Path, version: str) -> None:
    staged = _head_dir(models_dir) / "candidates" / version
    target = _head_dir(models_dir) / "versions" / version
    if target.exists():
        raise ModelArtifactError(f"head version {version} already exists in {models_dir}")
    target.parent.mkdir(parents=True, exist_ok=True)
    staged.rename(target)
    _point_to(models_dir, [*history(models_dir), version])


def rollback(models_dir: Path) -> str | None:
    """Go back one promotion; returns the version now current (None: the cold-start head)."""
    versions = history(models_dir)
    if not versions:
        raise ModelArtifactError("nothing to roll back: no head has been promoted")
    _point_to(models_dir, versions[:-1])
    return versions[-2] if len(versions) > 1 else None


def list_versions(models_dir: Path) -> list[dict[str, Any]]:
    """Every stored version with its metadata, newest first, marking the current one."""
    versions_dir = _head_dir(models_dir) / "versions"
    promoted = history(models_dir)
    current = promoted[-1] if promoted else None
    found = []
    for meta_path in sorted(versions_dir.glob("*/head.json")):
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            meta = {"version": meta_path.parent.name, "metrics": {}, "error": "unreadable head.json"}
        meta.pop("labels", None)
        meta["current"] = meta.get("version") == current
        found.append(meta)
    return sorted(found, key=lambda m: str(m.get("created_at", "")), reverse=True)
