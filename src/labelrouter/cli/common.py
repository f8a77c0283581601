"""What every command shares: consoles, one-line errors, settings from options, progress, number cells."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from labelrouter.errors import LabelRouterError
from labelrouter.settings import Settings, load_settings

out = Console()
err = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])

LabelsOpt = Annotated[Path | None, typer.Option(
    "--labels", help="labels.json to use (default: ./config/labels.json, else the packaged default).")]


def friendly_errors(fn: F) -> F:
    """A user-caused error prints one line and exits 2, never a traceback."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except LabelRouterError as exc:
            err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def settings_for(labels: Path | None = None, **overrides: Any) -> Settings:
    """Settings from the environment, with the command's options on top (unset options change nothing)."""
    if labels is not None:
        overrides["labels_path"] = labels
    return load_settings(**{k: v for k, v in overrides.items() if v is not None})


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


def progress(what: str) -> Progress:
    return Progress(TextColumn(f"[bold]{what}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=err, transient=True)


def number(value: Any, digits: int) -> str:
    """A metric for a table cell; anything that is not a number shows as '-'."""
    return f"{value:.{digits}f}" if isinstance(value, int | float) and not isinstance(value, bool) else "-"
