"""The label list: one flat, ordered list of labels whose parents form a hierarchy.

`config/labels.json` is the single source of truth. Its shape follows the taxonomy files in
`../shared/data` so a data set's taxonomy loads the same way:

    {"fallback": "other",
     "nodes":  [{"name": "work", "parent": null, "description": "..."}],
     "labels": [{"name": "💼-work-projects", "parent": "work", "description": "...", "archive": false}]}

Order matters: it is the output order of the head and of every score vector.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from labelrouter.errors import ConfigError


@dataclass(frozen=True)
class Label:
    name: str
    parent: str | None = None
    description: str = ""
    archive: bool = False
    archive_confidence: float | None = None  # overrides the archive threshold for this label

    def retrieval_text(self, parents: dict[str, Node | Label]) -> str:
        """Text the label is embedded from: its readable path and description."""
        path = [humanize(self.name)]
        node = parents.get(self.parent) if self.parent else None
        seen: set[str] = set()
        while node is not None and node.name not in seen:
            seen.add(node.name)
            path.insert(0, humanize(node.name))
            node = parents.get(node.parent) if node.parent else None
        head = " / ".join(dict.fromkeys(path))
        return f"{head}: {self.description}" if self.description else head


@dataclass(frozen=True)
class Node:
    """An internal node of the hierarchy (a category), not itself a label."""

    name: str
    parent: str | None = None
    description: str = ""


@dataclass(frozen=True)
class LabelSet:
    labels: tuple[Label, ...]
    nodes: tuple[Node, ...] = ()
    fallback: str | None = None
    _index: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {label.name: i for i, label in enumerate(self.labels)})

    @property
    def names(self) -> list[str]:
        return [label.name for label in self.labels]

    def __len__(self) -> int:
        return len(self.labels)

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def index(self, name: str) -> int:
        try:
            return self._index[name]
        except KeyError:
            raise ConfigError(f"unknown label {name!r}; known labels: {', '.join(self.names)}") from None

    def get(self, name: str) -> Label:
        return self.labels[self.index(name)]

    @property
    def routable(self) -> list[int]:
        """Indices the router scores: every label except the fallback, which only the threshold picks."""
        return [i for i, label in enumerate(self.labels) if label.name != self.fallback]

    def retrieval_texts(self) -> list[str]:
        parents: dict[str, Node | Label] = {label.name: label for label in self.labels}
        parents.update({node.name: node for node in self.nodes})
        return [label.retrieval_text(parents) for label in self.labels]

    def siblings(self, a: str, b: str) -> bool:
        pa, pb = self.get(a).parent, self.get(b).parent
        return pa is not None and pa == pb

    def tree_distances(self) -> np.ndarray:
        """(labels × labels) path lengths in the hierarchy: 0 for a label itself, 1 parent and child, 2
        siblings (and labels with no parent: all hang from one root), 3 a label and its parent's sibling,
        and so on. A flat label list is all 2s: no label is nearer than another."""
        parents: dict[str, str | None] = {node.name: node.parent for node in self.nodes}
        parents.update({label.name: label.parent for label in self.labels})

        def path(name: str) -> list[str]:  # the name, its parent, …, up to the root (cycles cut)
            chain = [name]
            while (parent := parents.get(chain[-1])) and parent not in chain:
                chain.append(parent)
            return [*chain, ""]  # "": the root every top-level entry hangs from

        paths = [path(label.name) for label in self.labels]
        depth = [{name: i for i, name in enumerate(p)} for p in paths]
        n = len(self.labels)
        distances = np.zeros((n, n), dtype=np.int32)
        for a in range(n):
            for b in range(a + 1, n):
                up = next(i for i, name in enumerate(paths[a]) if name in depth[b])  # to the lowest common ancestor
                distances[a, b] = distances[b, a] = up + depth[b][paths[a][up]]
        return distances

    def fingerprint(self) -> str:
        """Hash of what decisions depend on (names, order, parents, descriptions, fallback)."""
        canonical = json.dumps(
            {
                "fallback": self.fallback,
                "labels": [[lb.name, lb.parent, lb.description] for lb in self.labels],
                "nodes": [[n.name, n.parent] for n in self.nodes],
            },
            ensure_ascii=False,
            sort_keys=True,
        )
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def to_json(self) -> dict[str, Any]:
        return {
            "fallback": self.fallback,
            "nodes": [{"name": n.name, "parent": n.parent, "description": n.description} for n in self.nodes],
            "labels": [
                {"name": lb.name, "parent": lb.parent, "description": lb.description, "archive": lb.archive,
                 **({"archive_confidence": lb.archive_confidence} if lb.archive_confidence is not None else {})}
                for lb in self.labels
            ],
        }


def humanize(name: str) -> str:
    """`💼-work-projects` → `work projects`; `comp.sys.mac.hardware` → `comp sys mac hardware`."""
    words = [w for w in name.replace("_", "-").replace(".", "-").split("-") if any(c.isalnum() for c in w)]
    return " ".join(words) or name


# Gmail's system labels (case-insensitive) cannot be user label names; Maildir reserves its own folders.
RESERVED_LABEL_NAMES = {"inbox", "spam", "trash", "unread", "starred", "important", "sent", "draft", "drafts",
                        "chat", "chats", "all mail", "cur", "new", "tmp"}
MAX_LABEL_CHARS = 225  # Gmail's limit on a label name
MAX_LABEL_BYTES = 250  # the Maildir folder ".<name>" must fit a 255-byte file name


def label_name_problem(name: str) -> str | None:
    """Why a label name cannot be held by every backend (Maildir folder, Gmail label), or None."""
    if name != name.strip():
        return "leading or trailing whitespace"
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in name):
        return "control characters (NUL, newline, ...) are not allowed"
    if name.lower() in RESERVED_LABEL_NAMES or name.upper().startswith("CATEGORY_"):
        return f"{name!r} is reserved by Gmail or Maildir"
    if len(name) > MAX_LABEL_CHARS:
        return f"{len(name)} characters, over Gmail's {MAX_LABEL_CHARS}"
    if len(name.encode("utf-8")) > MAX_LABEL_BYTES:
        return f"{len(name.encode('utf-8'))} bytes in UTF-8, over the {MAX_LABEL_BYTES} a folder name can hold"
    if name.replace(".", "").replace("/", "").strip("_") == "":
        return "it needs at least one character other than '.', '/' and '_'"
    return None


def _entry_error(source: str, where: str, message: str) -> ConfigError:
    return ConfigError(f"{source}: {where}: {message}")


def parse_label_set(data: Any, source: str = "labels", *, require_fallback: bool = True) -> LabelSet:
    """Validate a decoded labels document; every error names the offending entry."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a JSON object with 'labels', got {type(data).__name__}")
    raw_labels = data.get("labels")
    if not isinstance(raw_labels, list) or not raw_labels:
        raise ConfigError(f"{source}: 'labels' must be a non-empty list")
    raw_nodes = data.get("nodes") or []
    if not isinstance(raw_nodes, list):
        raise ConfigError(f"{source}: 'nodes' must be a list")

    nodes: list[Node] = []
    for i, entry in enumerate(raw_nodes):
        where = f"nodes[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry["name"].strip():
            raise _entry_error(source, where, "each node needs a non-empty 'name'")
        nodes.append(Node(entry["name"], entry.get("parent"), str(entry.get("description") or "")))

    labels: list[Label] = []
    for i, entry in enumerate(raw_labels):
        where = f"labels[{i}]"
        if isinstance(entry, str):  # a bare name is accepted for quick lists
            entry = {"name": entry}
        if not isinstance(entry, dict):
            raise _entry_error(source, where, f"expected an object, got {type(entry).__name__}")
        name = entry.get("name")
        if not isinstance(name, str) or not name.strip():
            raise _entry_error(source, where, "missing or empty 'name'")
        where = f"labels[{i}] ({name!r})"
        parent = entry.get("parent")
        if parent is not None and not isinstance(parent, str):
            raise _entry_error(source, where, "'parent' must be a string or null")
        archive = entry.get("archive", False)
        if not isinstance(archive, bool):
            raise _entry_error(source, where, "'archive' must be true or false")
        description = entry.get("description", "")
        if not isinstance(description, str):
            raise _entry_error(source, where, "'description' must be a string")
        archive_confidence = entry.get("archive_confidence")
        if archive_confidence is not None and (
                isinstance(archive_confidence, bool) or not isinstance(archive_confidence, int | float)
                or not 0 <= archive_confidence <= 1):
            raise _entry_error(source, where, "'archive_confidence' must be a number from 0 to 1")
        problem = label_name_problem(name)
        if problem:
            raise _entry_error(source, where, f"invalid name: {problem}")
        labels.append(Label(name, parent, description.strip(), archive,
                            None if archive_confidence is None else float(archive_confidence)))

    seen: dict[str, int] = {}
    for i, label in enumerate(labels):
        if label.name in seen:
            raise _entry_error(source, f"labels[{i}] ({label.name!r})", f"duplicate name (first at labels[{seen[label.name]}])")
        seen[label.name] = i
    # A parent is a node (a category) or another label: Gmail nests labels, so `Clients` and `Clients/Acme`
    # are both labels and the first is the second's parent. A node may share a label's name (the same thing).
    node_names = {n.name for n in nodes}
    parent_names = node_names | set(seen)
    for i, node in enumerate(nodes):
        if node.parent is not None and node.parent not in parent_names:
            raise _entry_error(source, f"nodes[{i}] ({node.name!r})", f"unknown parent {node.parent!r}")
    for i, label in enumerate(labels):
        if label.parent is not None and label.parent not in parent_names:
            known = ", ".join(sorted(node_names)) or "none declared"
            raise _entry_error(
                source, f"labels[{i}] ({label.name!r})",
                f"unknown parent {label.parent!r} (nodes: {known}; or another label's name)",
            )
    # A label whose parent is the node of its own name is that node (a folder holding mail and
    # subfolders, as the Enron mailboxes have): its parent is the node's.
    node_parent = {n.name: n.parent for n in nodes}
    labels = [Label(lb.name, node_parent[lb.name], lb.description, lb.archive, lb.archive_confidence)
              if lb.parent == lb.name and lb.name in node_parent else lb for lb in labels]
    parent_of = {**{lb.name: lb.parent for lb in labels}, **{n.name: n.parent for n in nodes}}
    for i, label in enumerate(labels):
        chain, current = {label.name}, label.parent
        while current is not None:
            if current in chain:
                raise _entry_error(source, f"labels[{i}] ({label.name!r})", f"its parents form a cycle through {current!r}")
            chain.add(current)
            current = parent_of.get(current)

    fallback = data.get("fallback")
    if fallback is None and require_fallback:
        raise ConfigError(f"{source}: 'fallback' is required: name the label low-confidence messages get (e.g. "
                          "'other'); for a data set's taxonomy, `labelrouter init --taxonomy FILE --fallback NAME` "
                          "writes a label list with one")
    if fallback is not None and fallback not in seen:
        raise ConfigError(f"{source}: fallback {fallback!r} is not one of the labels")
    return LabelSet(tuple(labels), tuple(nodes), fallback)


def read_json(path: Path, what: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{what} not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None


def load_label_set(path: Path, *, require_fallback: bool = True) -> LabelSet:
    return parse_label_set(read_json(path, "labels file"), str(path), require_fallback=require_fallback)


def load_mailbox_ids(path: Path, labels: LabelSet) -> dict[str, str]:
    """Label name → mailbox label id (e.g. Gmail's `Label_123`). A missing file means 'none mapped yet'."""
    if not path.exists():
        return {}
    data = read_json(path, "label id mapping")
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ConfigError(f"{path}: expected an object of label name → label id strings")
    unknown = [k for k in data if k not in labels]
    if unknown:
        raise ConfigError(f"{path}: unknown label(s) {', '.join(map(repr, unknown))}; add them to labels.json first")
    return dict(data)
