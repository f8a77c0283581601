"""Extensions: user nodes placed in the inference graph without forking it.

An `Extension` is a node function `(state, runtime) -> dict` (or a compiled subgraph) with the place it
goes and the state fields it reads and writes. Writes are checked twice: when the graph is built (each
declared field must exist on `LabelingState`) and on every run (a node returning an undeclared field is
an error naming the extension). An extension's own results go in `state.extensions[<its name>]`, which
`labelrouter label` prints.

Places: `before_router` (after summarize, before label_router: an extension that sets `routing` decides
the label and the router is skipped), `after_router` (between label_router and apply), `after_apply`.

Found through the entry-point group `labelrouter.nodes` (installed packages; labelrouter ships one,
sender rules) and `LABELROUTER_EXTENSIONS=module:attr,…` (code on the path that is not installed). The
attribute is an Extension or a list of them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Literal

from labelrouter.errors import ConfigError
from labelrouter.state import LabelingState

Place = Literal["before_router", "after_router", "after_apply"]
PLACES: tuple[str, ...] = ("before_router", "after_router", "after_apply")
ENTRY_POINT_GROUP = "labelrouter.nodes"
_RESERVED = {"summarize", "label_router", "apply"}


@dataclass(frozen=True)
class Extension:
    name: str
    node: Any  # a function (state, runtime) -> dict, or a compiled LangGraph subgraph
    place: Place
    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ("extensions",)
    description: str = ""

    def validate(self) -> Extension:
        fields = set(LabelingState.model_fields)
        if not self.name.isidentifier() or self.name in _RESERVED:
            raise ConfigError(f"extension name {self.name!r} must be an identifier other than {sorted(_RESERVED)}")
        if self.place not in PLACES:
            raise ConfigError(f"extension {self.name!r}: place {self.place!r} is not one of {', '.join(PLACES)}")
        unknown = sorted((set(self.reads) | set(self.writes)) - fields)
        if unknown:
            raise ConfigError(f"extension {self.name!r} declares unknown state fields {unknown}; "
                              f"fields: {', '.join(sorted(fields))}")
        if "message" in self.writes:
            raise ConfigError(f"extension {self.name!r} may not write the input message")
        if not callable(self.node) and not hasattr(self.node, "invoke"):
            raise ConfigError(f"extension {self.name!r}: node must be a function or a compiled graph")
        return self

    def as_node(self) -> Callable[..., Any]:
        """The node LangGraph runs: the extension's, with its writes checked on every call."""
        if hasattr(self.node, "invoke"):
            return self.node  # a compiled subgraph: LangGraph maps state in and out itself
        node, name, allowed = self.node, self.name, set(self.writes)

        def run(state: LabelingState, runtime: Any) -> Any:
            update = node(state, runtime)
            if update is None:
                return {}
            if not isinstance(update, dict):
                raise TypeError(f"extension {name!r} returned {type(update).__name__}, not a dict of state updates")
            undeclared = sorted(set(update) - allowed)
            if undeclared:
                raise TypeError(f"extension {name!r} wrote {undeclared}, which it did not declare in writes")
            return update

        run.__name__ = name
        return run


def _resolve(spec: str, source: str) -> list[Extension]:
    module_name, _, attr = spec.strip().partition(":")
    if not module_name or not attr:
        raise ConfigError(f"{source}: {spec!r} is not module:attribute")
    try:
        value = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"{source}: cannot load extension {spec!r} ({type(exc).__name__}: {exc})") from None
    items = value if isinstance(value, list | tuple) else [value]
    if not all(isinstance(item, Extension) for item in items):
        raise ConfigError(f"{source}: {spec!r} is not an Extension (or a list of them)")
    return [item.validate() for item in items]


def load_extensions(spec: str | None = None, *, installed: bool = True) -> list[Extension]:
    """Installed extensions (entry points), then those named in `spec` (LABELROUTER_EXTENSIONS)."""
    found: list[Extension] = []
    if installed:
        for point in entry_points(group=ENTRY_POINT_GROUP):
            found.extend(_resolve(point.value, f"entry point {point.name!r}"))
    for item in (spec or "").split(","):
        if item.strip():
            found.extend(_resolve(item, "LABELROUTER_EXTENSIONS"))
    names = [e.name for e in found]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"two extensions are named {duplicates}; names must be unique")
    return found
