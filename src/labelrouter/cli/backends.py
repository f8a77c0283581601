"""Building backends from settings, for every command, in one place: the store, the model registry, the
mailbox, the inference context and the targets of a label change. Commands never construct them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from labelrouter.errors import ConfigError
from labelrouter.labels import LabelSet, load_label_set
from labelrouter.settings import Settings
from labelrouter.util.files import private_dir, write_json_atomic

KNOWN_MAILBOXES = "mailboxes.json"  # in <home>: the Maildirs `run` labeled, so label changes reach them


def labels(settings: Settings) -> LabelSet:
    """The label list, loaded (and so validated) before any model loads or anything is written."""
    return load_label_set(settings.labels_path)


def store(settings: Settings, *, create: bool = True) -> Any:
    from labelrouter.store import open_store

    return open_store(settings, create=create)


def store_description(settings: Settings) -> str:
    """Where the store is, for people: the SQLite path, or the database URL without its password."""
    from labelrouter.store import redact

    return redact(settings.database_url) if settings.database_url else str(settings.resolved_db_path)


def registry(settings: Settings) -> Any:
    from labelrouter.artifacts import open_artifacts
    from labelrouter.models.registry import ModelRegistry

    return ModelRegistry(open_artifacts(settings))


def encoder(settings: Settings) -> Any:
    """The settings' encoder (the packaged MiniLM by default): what `eval` measures a fresh start with."""
    from labelrouter.models.encoder import encoder_for

    return encoder_for(settings)


def serving_encoder(settings: Settings) -> Any:
    """The encoder the current model bundle was trained on (a promoted fine-tuned one), else the settings'."""
    from labelrouter.models.encoder_store import serving_encoder as resolve

    return resolve(settings, registry(settings))


def maildir(path: Path) -> Any:
    from labelrouter.mail.maildir import LocalMaildir

    return LocalMaildir(path, create=False)


def mailbox(settings: Settings, path: Path | None = None) -> Any:
    """The mailbox run, sync and undo work on: a Maildir (`path`, default <home>/mailbox), or Gmail."""
    from labelrouter.mail.backends import open_mailbox

    return open_mailbox(settings, path)


def context(settings: Settings, **kwargs: Any) -> Any:
    from labelrouter.graph.wiring import build_context

    return build_context(settings, **kwargs)


def labeler(opened: Any, mode: Any) -> Any:
    """A labeler for one `run` of this opened mailbox (`usecases.poll`): its context built from settings,
    with the durable runs' checkpointer when they are on."""
    from labelrouter.graph.labeler import Labeler

    settings = opened.settings
    ctx = context(settings, mode=mode, mailbox=opened.mailbox, store=opened.store, labels=opened.labels)
    checkpointer = None
    if settings.durable_runs:
        from labelrouter.graph.checkpoints import open_checkpointer

        checkpointer = open_checkpointer(settings)
    return Labeler(ctx, settings, checkpointer=checkpointer)


def remember_mailbox(settings: Settings, path: Path) -> None:
    """Note a Maildir that `run` labels, so `labels rename` and `merge` change its folders too."""
    known = known_mailboxes(settings)
    resolved = str(path.resolve())
    if resolved not in known:
        write_json_atomic(private_dir(settings.home) / KNOWN_MAILBOXES, {"maildirs": [*known, resolved]})


def known_mailboxes(settings: Settings) -> list[str]:
    import json

    try:
        data = json.loads((settings.home / KNOWN_MAILBOXES).read_text(encoding="utf-8"))
        return [str(p) for p in data.get("maildirs", []) if isinstance(p, str)]
    except (OSError, ValueError, AttributeError):
        return []


@contextlib.contextmanager
def change_targets(settings: Settings, extra_mailbox: Path | None = None) -> Iterator[Any]:
    """What a label change must keep consistent: config, store, model registry, and every Maildir this
    home labeled (the default one, each one `run --mailbox` labeled, and `--mailbox` if given)."""
    from labelrouter.feedback.label_changes import Targets

    if settings.uses_packaged_labels:
        raise ConfigError("this would edit the label list shipped with labelrouter: run `labelrouter init` to "
                          "write your own config/labels.json here first (or pass --labels FILE)")
    candidates = [settings.resolved_mailbox_path, *map(Path, known_mailboxes(settings))]
    if extra_mailbox is not None:
        if not (extra_mailbox / "cur").is_dir():
            raise ConfigError(f"{extra_mailbox} is not a Maildir (no cur/ folder)")
        candidates.append(extra_mailbox)
    unique = {str(p.resolve()): p for p in candidates if (p / "cur").is_dir()}
    enc = encoder(settings)
    opened = store(settings, create=False)
    try:
        yield Targets(labels_path=settings.labels_path, registry=registry(settings), embedder=enc.version,
                      dim=enc.dim, store=opened, mailboxes=tuple(maildir(p) for p in unique.values()))
    finally:
        if opened is not None:
            opened.close()
