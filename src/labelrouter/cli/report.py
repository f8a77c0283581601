"""`labelrouter report`: the quality report over the store, as one HTML page."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from labelrouter.cli import backends
from labelrouter.cli.common import LabelsOpt, friendly_errors, out, settings_for
from labelrouter.errors import LabelRouterError


@friendly_errors
def report(
    output: Annotated[Path, typer.Option("--out", help="The HTML file to write.")] = Path("labelrouter-report.html"),
    by: Annotated[str, typer.Option(help="Count each message in the week it arrived (its Date header) or was processed.")] = "arrived",
    weeks: Annotated[int | None, typer.Option(min=1, help="Only the last N weeks (default: all).")] = None,
    labels: LabelsOpt = None,
) -> None:
    """Write the quality report: per week messages labeled, coverage, the correction rate (1 − it is the
    accuracy you see), drift of the predicted labels and the models promoted; the most-corrected label pairs
    (sibling confusions flagged). One self-contained HTML page with plots; no message text in it."""
    from labelrouter.report import build_report, render_html

    if by not in ("arrived", "processed"):
        raise LabelRouterError(f"--by takes arrived or processed, not {by!r}")
    settings = settings_for(labels)
    label_set = backends.labels(settings)
    store = backends.store(settings, create=False)
    rows = []
    if store is not None:
        try:
            rows = store.report_rows()
        finally:
            store.close()
    registry = backends.registry(settings)
    source = backends.store_description(settings)
    built = build_report(rows, label_set, registry.list_versions(), history=registry.history(), by=by,
                         last_weeks=weeks, source=source)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render_html(built), encoding="utf-8")
    t = built.totals
    weeks_text = f"{t['weeks']} week" + ("" if t["weeks"] == 1 else "s")
    out.print(f"wrote {output}: {t['labeled']} messages labeled over {weeks_text}, {t['promotions']} models promoted")
