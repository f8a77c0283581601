"""Files labelrouter creates hold mail metadata and models: owner-only, written atomically."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def private_dir(path: Path) -> Path:
    """Create `path` and any missing parents readable by the owner only (mode 0700); existing ones are
    left as they are (they may be the user's own directories)."""
    missing = []
    current = Path(path)
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for directory in reversed(missing):
        directory.mkdir(mode=0o700, exist_ok=True)
    return Path(path)


def write_json_atomic(path: Path, data: Any) -> None:
    """Write via a temporary file and rename, so a crash never leaves half a file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
