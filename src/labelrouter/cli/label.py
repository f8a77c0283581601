"""`labelrouter label`: decide and explain one message (or each message of an mbox) as JSON."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from labelrouter.cli import backends
from labelrouter.cli.common import LabelsOpt, friendly_errors, settings_for
from labelrouter.errors import LabelRouterError


@friendly_errors
def label(
    file: Annotated[str, typer.Argument(help="An .eml or mbox file, or - for standard input.")],
    labels: LabelsOpt = None,
    compact: Annotated[bool, typer.Option(help="One line of JSON per message.")] = False,
) -> None:
    """Decide and explain the label of one message (or each message of an mbox) as JSON. Touches no mailbox.

    Input is read, split and parsed before the model loads, so unusable input is refused at once. In an
    mbox, a message that cannot be parsed is reported as {"index", "error"} and the others are labeled."""
    from labelrouter.graph.labeler import Labeler, parse_raw
    from labelrouter.mail.parse import split_messages
    from labelrouter.state import LabelingOutput
    from labelrouter.util.limits import describe_error

    if file == "-":
        raw = sys.stdin.buffer.read()
    else:
        try:
            raw = Path(file).read_bytes()
        except OSError as exc:
            raise LabelRouterError(f"cannot read {file}: {exc.strerror}") from None
    settings = settings_for(labels)
    label_set = backends.labels(settings)  # a broken config is refused before the model loads
    try:
        parts = split_messages(raw)
    except Exception as exc:  # noqa: BLE001 - a damaged mbox is a user error, not a traceback
        raise LabelRouterError(f"cannot split {file} into messages: {describe_error(exc)}") from None
    parsed: list[Any] = []
    for part in parts:
        try:
            parsed.append(parse_raw(part, settings))
        except Exception as exc:  # noqa: BLE001
            if len(parts) == 1:
                raise LabelRouterError(describe_error(exc)) from None
            parsed.append(exc)
    results: list[dict[str, Any]] = []
    if any(not isinstance(m, Exception) for m in parsed):
        labeler = Labeler(backends.context(settings, mode="decide", labels=label_set), settings)
    for index, message in enumerate(parsed):
        if isinstance(message, Exception):
            results.append({"index": index, "error": describe_error(message)})
            continue
        try:
            results.append(LabelingOutput.model_validate(labeler.label(message)).explanation())
        except Exception as exc:  # noqa: BLE001 - one message's failure is that message's
            results.append({"index": index, "message": {"id": message.id}, "error": describe_error(exc)})
    payload: Any = results[0] if len(results) == 1 else results
    if compact:
        for item in results:
            typer.echo(json.dumps(item, ensure_ascii=False))
    else:
        typer.echo(json.dumps(payload, ensure_ascii=False, indent=2))
    if any("error" in item for item in results):
        raise typer.Exit(1)
