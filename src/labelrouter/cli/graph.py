"""`labelrouter graph`: draw the inference graph (with its extensions) or the training graph, offline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from labelrouter.cli.common import friendly_errors, out, settings_for
from labelrouter.errors import LabelRouterError


@friendly_errors
def graph(
    fmt: Annotated[str, typer.Option("--format", "-f", help="mermaid, ascii or png.")] = "mermaid",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here (required for png).")] = None,
    which: Annotated[str, typer.Option("--graph", help="inference or train.")] = "inference",
) -> None:
    """Draw the inference graph, or the training graph with --graph train (offline)."""
    from labelrouter.extensions import load_extensions
    from labelrouter.graph.draw import draw
    from labelrouter.graph.inference import build_inference_graph
    from labelrouter.training.graph import build_training_graph

    builders = {"inference": lambda: build_inference_graph(extensions=load_extensions(settings_for().extensions)),
                "train": build_training_graph}
    if which not in builders:
        raise LabelRouterError(f"unknown graph {which!r}: use inference or train")
    if fmt not in ("mermaid", "ascii", "png"):
        raise LabelRouterError(f"unknown format {fmt!r}: use mermaid, ascii or png")
    if fmt == "png" and output is None:
        raise LabelRouterError("--format png needs --output FILE.png")
    drawing = draw(builders[which]().compile().get_graph(), fmt)  # type: ignore[arg-type]
    if output is not None:
        output.write_bytes(drawing if isinstance(drawing, bytes) else drawing.encode())
        out.print(f"wrote {output}")
    else:
        typer.echo(drawing)
