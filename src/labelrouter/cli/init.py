"""`labelrouter init`: the user's own configuration, in their own directory."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated

import typer

from labelrouter.cli.common import friendly_errors, out
from labelrouter.errors import ConfigError
from labelrouter.labels import Label, LabelSet, load_label_set, parse_label_set
from labelrouter.settings import PACKAGED_LABELS, USER_CONFIG
from labelrouter.util.files import write_json_atomic


def labels_from_taxonomy(taxonomy: Path, fallback: str) -> LabelSet:
    """A data set's taxonomy as a label list, with `fallback` added (last) when it is not one of its labels."""
    data = load_label_set(taxonomy, require_fallback=False)
    labels = data.labels if fallback in data else (*data.labels, Label(fallback, None, "Mail that fits no other label"))
    converted = LabelSet(tuple(labels), data.nodes, fallback)
    return parse_label_set(converted.to_json(), str(taxonomy))  # every name checked as a config's would be


@friendly_errors
def init(
    directory: Annotated[Path, typer.Option("--dir", help="Where to create config/ (default: here).")] = Path("."),
    taxonomy: Annotated[Path | None, typer.Option(
        "--taxonomy", help="Start from a data set's taxonomy.json instead of the packaged label list.")] = None,
    fallback: Annotated[str, typer.Option(
        "--fallback", help="With --taxonomy: the label low-confidence mail gets (added if the set has none).")] = "other",
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing config/labels.json.")] = False,
) -> None:
    """Write config/labels.json here: your own label list, which `labels add/rename/merge` then edit."""
    target = directory / USER_CONFIG / "labels.json"
    if target.exists() and not force:
        raise ConfigError(f"{target} already exists; --force overwrites it")
    target.parent.mkdir(parents=True, exist_ok=True)
    if taxonomy is None:
        shutil.copyfile(PACKAGED_LABELS, target)
        labels = load_label_set(target)
    else:
        labels = labels_from_taxonomy(taxonomy, fallback)
        write_json_atomic(target, labels.to_json())
    out.print(f"wrote {target}: {len(labels)} labels, fallback {labels.fallback!r}. labelrouter reads it when run "
              f"from {directory.resolve()}; set LABELROUTER_LABELS_PATH to use it from elsewhere.")
