"""Sender rules, the extension labelrouter ships: an address or domain pattern decides the label.

`config/sender_rules.json` (or `LABELROUTER_SENDER_RULES_PATH`):

    {"rules": [{"match": "alerts@mybank.example", "label": "🔔-updates-security"},
               {"match": "*@newsletter.example", "label": "📰-updates-newsletters"},
               {"match": "acme.example", "label": "💼-work-projects"}]}

`match` with an `@` is a case-insensitive glob on the sender's address; without one it is a domain and
matches that domain and its subdomains. The first matching rule wins; it runs before the router, which is
then skipped, and the decision says so: reason `sender-rule`, confidence 1.0, and
`extensions.sender_rules` names the rule. No rules file: the extension does nothing.
"""

from __future__ import annotations

import email.utils
import fnmatch
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from labelrouter.errors import ConfigError
from labelrouter.extensions import Extension
from labelrouter.labels import LabelSet, read_json
from labelrouter.nodes.context import context_of
from labelrouter.state import LabelingState


@dataclass(frozen=True)
class SenderRule:
    index: int
    match: str
    label: str

    def matches(self, address: str) -> bool:
        if "@" in self.match:
            return fnmatch.fnmatchcase(address, self.match.lower())
        domain = address.rpartition("@")[2]
        return domain == self.match.lower() or domain.endswith("." + self.match.lower())


def parse_rules(data: Any, labels: LabelSet, source: str) -> tuple[SenderRule, ...]:
    if not isinstance(data, dict) or not isinstance(data.get("rules"), list):
        raise ConfigError(f"{source}: expected {{\"rules\": [{{\"match\": ..., \"label\": ...}}, ...]}}")
    rules = []
    for i, entry in enumerate(data["rules"]):
        if not isinstance(entry, dict) or not isinstance(entry.get("match"), str) or not entry["match"].strip():
            raise ConfigError(f"{source}: rules[{i}]: needs a non-empty 'match' (an address glob or a domain)")
        label = entry.get("label")
        if label not in labels:
            raise ConfigError(f"{source}: rules[{i}] ({entry['match']!r}): unknown label {label!r}")
        rules.append(SenderRule(i, entry["match"].strip(), str(label)))
    return tuple(rules)


@lru_cache(maxsize=8)
def _load(path: str, stamp: int, labels: LabelSet) -> tuple[SenderRule, ...]:
    return parse_rules(read_json(Path(path), "sender rules"), labels, path)


def load_rules(path: Path | None, labels: LabelSet) -> tuple[SenderRule, ...]:
    """The rules in `path` (re-read when the file changes); none when there is no file."""
    if path is None or not path.exists():
        return ()
    return _load(str(path), path.stat().st_mtime_ns, labels)


def sender_address(sender: str) -> str:
    return email.utils.parseaddr(sender)[1].strip().lower()


def apply_sender_rules(state: LabelingState, runtime: Any) -> dict[str, Any]:
    ctx = context_of(runtime)
    path = getattr(ctx.settings, "sender_rules_path", None) if ctx.settings is not None else None
    address = sender_address(state.message.sender)
    if not address:
        return {}
    rule = next((r for r in load_rules(path, ctx.labels) if r.matches(address)), None)
    if rule is None:
        return {}
    routing = ctx.router.decided(rule.label, reason="sender-rule")
    return {"routing": routing,
            "extensions": {"sender_rules": {"rule": rule.index, "match": rule.match, "sender": address}}}


extension = Extension(
    name="sender_rules", node=apply_sender_rules, place="before_router", reads=("message",),
    writes=("routing", "extensions"), description="An address or domain pattern decides the label.",
)
