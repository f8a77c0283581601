"""Versioned heads: promote, list, roll back. Layout and format: docs/scoring.md (`labelrouter.head/v1`).

`<models_dir>/head/history.json` lists promoted versions oldest first; the last one is current and is
also written to `current.json` (what inference reads). Writes go through a temporary file and a rename.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from labelrouter.errors import ModelArtifactError
from labelrouter.fsutil import private_dir, write_json_atomic
from labelrouter.models.head import LinearHead, read_head_meta, version_dir


def _head_dir(models_dir: Path) -> Path:
    return models_dir / "head"


def history(models_dir: Path) -> list[str]:
    path = _head_dir(models_dir) / "history.json"
    if not path.exists():
        return []
    try:
        versions = json.loads(path.read_text(encoding="utf-8"))["promoted"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelArtifactError(f"{path}: unreadable promotion history ({exc}); restore it from a backup "
                                 "or delete it to start the history again") from None
    if not isinstance(versions, list):
        raise ModelArtifactError(f"{path}: 'promoted' must be a list of versions; restore it from a backup")
    for version in versions:
        version_dir(models_dir, version, path)  # confined to the models directory
    return [str(v) for v in versions]


def _point_to(models_dir: Path, versions: list[str]) -> None:
    head_dir = private_dir(_head_dir(models_dir))
    write_json_atomic(head_dir / "history.json", {"promoted": versions})
    if versions:
        write_json_atomic(head_dir / "current.json", {"version": versions[-1]})
    else:
        (head_dir / "current.json").unlink(missing_ok=True)  # back to the cold-start head


def stage(models_dir: Path, head: LinearHead) -> Path:
    """Write a candidate where inference never looks; `promote` moves it into place."""
    target = private_dir(_head_dir(models_dir) / "candidates") / head.version
    head.save(target)
    return target


def discard_staged(models_dir: Path) -> None:
    """Remove staged candidates (a failed or killed training run's leftovers)."""
    shutil.rmtree(_head_dir(models_dir) / "candidates", ignore_errors=True)


def promote(models_dir: Path, version: str) -> None:
    staged = _head_dir(models_dir) / "candidates" / version
    target = _head_dir(models_dir) / "versions" / version
    if target.exists():
        raise ModelArtifactError(f"head version {version} already exists in {models_dir}")
    target.parent.mkdir(parents=True, exist_ok=True)
    staged.rename(target)
    _point_to(models_dir, [*history(models_dir), version])


def repromote(models_dir: Path, version: str) -> None:
    """Make an already stored version current again (after a rollback); it must still be a valid head."""
    directory = version_dir(models_dir, version, _head_dir(models_dir) / "versions")
    if not directory.is_dir():
        raise ModelArtifactError(f"no stored head version {version!r} in {models_dir}; `labelrouter models` lists them")
    read_head_meta(directory)  # a damaged version is refused here, not at the next label
    versions = history(models_dir)
    if versions and versions[-1] == version:
        return
    _point_to(models_dir, [*versions, version])


def rollback(models_dir: Path) -> str | None:
    """Go back one promotion; returns the version now current (None: the cold-start head)."""
    versions = history(models_dir)
    if not versions:
        raise ModelArtifactError("nothing to roll back: no head has been promoted")
    _point_to(models_dir, versions[:-1])
    return versions[-2] if len(versions) > 1 else None


def list_versions(models_dir: Path) -> list[dict[str, Any]]:
    """Every stored version with its validated metadata, newest first, marking the current one. A damaged
    version is listed with its error instead of failing the listing."""
    versions_dir = _head_dir(models_dir) / "versions"
    promoted = history(models_dir)
    current = promoted[-1] if promoted else None
    found = []
    for meta_path in sorted(versions_dir.glob("*/head.json")):
        try:
            meta = read_head_meta(meta_path.parent).model_dump(exclude={"labels"})
        except ModelArtifactError as exc:
            meta = {"version": meta_path.parent.name, "metrics": {}, "thresholds": {}, "error": str(exc)}
        meta["current"] = meta.get("version") == current
        found.append(meta)
    return sorted(found, key=lambda m: str(m.get("created_at", "")), reverse=True)
