"""`labelrouter models [promote|rollback]`: the model bundles in the registry."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from labelrouter.cli import backends
from labelrouter.cli.common import friendly_errors, number, out, settings_for

models_app = typer.Typer(help="List model versions, promote one again, or roll back.", no_args_is_help=False)


@models_app.callback(invoke_without_command=True)
@friendly_errors
def models_list(context: typer.Context) -> None:
    """List model versions with their validation metrics (current one marked)."""
    if context.invoked_subcommand is not None:
        return
    table = Table()
    for column in ("version", "current", "created", "top-1", "Recall@K", "threshold", "archive", "n_train"):
        table.add_column(column)
    versions = backends.registry(settings_for()).list_versions()
    for meta in versions:
        metrics = meta.get("metrics") if isinstance(meta.get("metrics"), dict) else {}
        val = metrics.get("validation") if isinstance(metrics.get("validation"), dict) else {}
        thresholds = meta.get("thresholds") or {}
        created = str(meta.get("created_at", "")) if "error" not in meta else f"[red]damaged: {meta['error']}[/]"
        table.add_row(str(meta.get("version")), "✓" if meta["current"] else "", created,
                      number(val.get("top1"), 4), number(val.get("recall@k"), 4),
                      _fallback_rule(thresholds), number(thresholds.get("archive"), 3),
                      str(metrics.get("n_train", "")))
    if table.row_count:
        out.print(table)
    current = next((m["version"] for m in versions if m["current"]), None)
    out.print(f"current head: {current}" if current else
              "current head: cold-start (1.0 for every label; no head promoted, or rolled back to none)")


def _fallback_rule(thresholds: dict) -> str:
    """The fallback threshold, and what it is compared with when that is the margin (docs/scoring.md)."""
    margin = thresholds.get("fallback_margin")
    return f"margin {number(margin, 2)}" if margin is not None else number(thresholds.get("fallback"), 3)


@models_app.command("promote")
@friendly_errors
def models_promote(version: Annotated[str, typer.Argument(help="A stored version (see `labelrouter models`).")]) -> None:
    """Make a stored version current again (e.g. one that was rolled back)."""
    backends.registry(settings_for()).repromote(version)
    out.print(f"current head: {version}")


@models_app.command("rollback")
@friendly_errors
def models_rollback() -> None:
    """Make the previously promoted version current again (or the cold-start head)."""
    now = backends.registry(settings_for()).rollback()
    out.print(f"current head: {now or 'cold-start'}")
