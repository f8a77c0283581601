"""Changing the label list without losing what was learned: add, rename, merge.

Each change is validated in full before anything is written. Then, in order: the mailbox, the store
(examples and decisions are relabeled, so training data stays valid), the head (a derived version is
promoted, so `models rollback` undoes it), and last the labels file (written atomically).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from labelrouter.errors import ConfigError
from labelrouter.labels import LabelSet, parse_label_set, read_json
from labelrouter.mail.mailbox import Mailbox
from labelrouter.models.bundle import LinearHead
from labelrouter.models.registry import ModelRegistry
from labelrouter.store.base import Store
from labelrouter.util.files import write_json_atomic


@dataclasses.dataclass
class Targets:
    labels_path: Path
    registry: ModelRegistry
    embedder: str
    dim: int
    store: Store | None = None
    mailboxes: tuple[Mailbox, ...] = ()  # every mailbox labelrouter labeled with this home


def _load(path: Path) -> tuple[dict[str, Any], LabelSet]:
    doc = read_json(path, "labels file")
    return doc, parse_label_set(doc, str(path))


def _current_linear(targets: Targets) -> LinearHead | None:
    head = targets.registry.current_head(embedder=targets.embedder, dim=targets.dim)
    return head if isinstance(head, LinearHead) else None


def _commit(targets: Targets, new_doc: dict[str, Any], *, mailbox_change: Callable[[Mailbox], Any],
            relabel: tuple[str, str] | None, derive: Callable[[LinearHead], LinearHead | None], suffix: str) -> str:
    """Validate the new labels document, then change mailbox, store and head, and write the config last."""
    parse_label_set(new_doc, str(targets.labels_path))  # e.g. an unknown parent fails here, before any write
    for mailbox in targets.mailboxes:
        mailbox_change(mailbox)
    if targets.store is not None and relabel is not None:
        targets.store.relabel(*relabel)
    version = "cold-start"
    head = _current_linear(targets)
    derived = derive(head) if head is not None else None
    if derived is not None:
        version = f"{derived.version.split('+')[0]}+{suffix}{len(targets.registry.history()) + 1}"
        targets.registry.stage(dataclasses.replace(derived, version=version))
        targets.registry.promote(version, embedder=targets.embedder, dim=targets.dim)
    write_json_atomic(targets.labels_path, new_doc)
    return version


def add_label(targets: Targets, name: str, *, parent: str | None, description: str, archive: bool = False) -> str:
    """Add a label (before the fallback); the head grows one output initialised to the mean of the others.

    A row equal to the mean of W and b gives the new label the average logit: it is routable at once from
    its description (its label vector) and cannot dominate until training gives it its own output.
    """
    doc, labels = _load(targets.labels_path)
    if name in labels:
        raise ConfigError(f"label {name!r} already exists")
    if not description.strip():
        raise ConfigError("a new label needs a --description: the router retrieves labels by it")
    entry = {"name": name, "parent": parent, "description": description.strip(), "archive": archive}
    new_doc = json.loads(json.dumps(doc))
    at = next((i for i, lb in enumerate(new_doc["labels"]) if isinstance(lb, dict) and lb.get("name") == labels.fallback),
              len(new_doc["labels"]))
    new_doc["labels"].insert(at, entry)

    def grow(head: LinearHead) -> LinearHead:
        return dataclasses.replace(
            head, labels=[*head.labels, name], W=np.vstack([head.W, head.W.mean(axis=0, keepdims=True)]),
            b=np.append(head.b, head.b.mean()).astype(np.float32),
        )

    return _commit(targets, new_doc, mailbox_change=lambda box: box.ensure_labels([name]), relabel=None,
                   derive=grow, suffix="add")


def _rename_in_doc(doc: dict[str, Any], old: str, new: str | None) -> dict[str, Any]:
    new_doc = json.loads(json.dumps(doc))
    kept = []
    for entry in new_doc["labels"]:
        name = entry if isinstance(entry, str) else entry.get("name")
        if name != old:
            kept.append(entry)
        elif new is not None:
            kept.append(new if isinstance(entry, str) else {**entry, "name": new})
    new_doc["labels"] = kept
    if new_doc.get("fallback") == old:
        if new is None:
            raise ConfigError(f"{old!r} is the fallback label; it cannot be merged away")
        new_doc["fallback"] = new
    return new_doc


def rename_label(targets: Targets, old: str, new: str) -> str:
    doc, labels = _load(targets.labels_path)
    if old not in labels:
        raise ConfigError(f"unknown label {old!r}")
    if new in labels:
        raise ConfigError(f"label {new!r} already exists; use `labels merge` to combine two labels")

    def renamed(head: LinearHead) -> LinearHead:
        return dataclasses.replace(
            head, labels=[new if x == old else x for x in head.labels],
            label_vectors={(new if k == old else k): v for k, v in head.label_vectors.items()},
        )

    return _commit(targets, _rename_in_doc(doc, old, new), mailbox_change=lambda box: box.rename_label(old, new),
                   relabel=(old, new), derive=renamed, suffix="rename")


def merge_labels(targets: Targets, source: str, into: str) -> str:
    """Fold `source` into `into`: its mail, examples and decisions become `into`'s; its head output goes."""
    doc, labels = _load(targets.labels_path)
    for name in (source, into):
        if name not in labels:
            raise ConfigError(f"unknown label {name!r}")
    if source == into:
        raise ConfigError("cannot merge a label into itself")

    def merged(head: LinearHead) -> LinearHead | None:
        if source not in head.labels:
            return None
        keep = [i for i, x in enumerate(head.labels) if x != source]
        return dataclasses.replace(
            head, labels=[head.labels[i] for i in keep], W=head.W[keep], b=head.b[keep],
            label_vectors={k: v for k, v in head.label_vectors.items() if k != source},
        )

    return _commit(targets, _rename_in_doc(doc, source, None),
                   mailbox_change=lambda box: box.merge_label(source, into), relabel=(source, into), derive=merged,
                   suffix="merge")
