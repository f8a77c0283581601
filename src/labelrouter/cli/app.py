"""`labelrouter` command line: a thin face. Each command group lives in its own module; backends are built
from settings in `cli/backends.py`; the JSON a decision prints is the state output model's own."""

from __future__ import annotations

from typing import Annotated

import typer

from labelrouter.cli import data, feedback, fleet, graph, init, label, replay, report, run
from labelrouter.cli.common import setup_logging
from labelrouter.cli.gmail import gmail_app
from labelrouter.cli.labels import labels_app
from labelrouter.cli.models import models_app

app = typer.Typer(
    help="Label email with one label per message: summarize → label_router → apply.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
)


@app.callback()
def main_options(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log at INFO level.")] = False) -> None:
    setup_logging(verbose)


app.command()(init.init)
app.command()(label.label)
app.command()(run.run)
app.command()(run.demo)
app.command()(feedback.sync)
app.command()(feedback.feedback)
app.command()(feedback.undo)
app.command()(replay.replay)
app.command()(graph.graph)
app.command()(report.report)
app.command("import")(data.import_)
app.command()(data.train)
app.command("eval")(data.eval_)
app.command()(fleet.worker)
app.command()(fleet.beat)
app.add_typer(fleet.fleet_app, name="fleet")
app.add_typer(labels_app, name="labels")
app.add_typer(models_app, name="models")
app.add_typer(gmail_app, name="gmail")


def main() -> None:
    app()
