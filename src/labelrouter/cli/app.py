"""`labelrouter` command line. Thin: builds settings and context, calls the library, prints."""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from labelrouter.errors import LabelRouterError
from labelrouter.labels import load_label_set
from labelrouter.settings import Settings, load_settings

app = typer.Typer(
    help="Label email with one label per message: summarize → label_router → apply.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])

LabelsOpt = Annotated[Path | None, typer.Option("--labels", help="labels.json to use (default: config/labels.json).")]


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


def _settings(labels: Path | None = None, **overrides: Any) -> Settings:
    if labels is not None:
        overrides["labels_path"] = labels
    return load_settings(**{k: v for k, v in overrides.items() if v is not None})


@app.callback()
def main_options(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log at INFO level.")] = False) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


def explanation(result: dict[str, Any]) -> dict[str, Any]:
    """The JSON `label` prints: the decision and every number behind it (no message body)."""
    msg = result["message"]
    return {
        "message": {"id": msg.id, "subject": msg.subject, "sender": msg.sender,
                    "date": msg.date.isoformat() if msg.date else None, "truncated": msg.truncated,
                    "parse_warnings": msg.parse_warnings},
        "summary": result["summary"].model_dump() if result.get("summary") else None,
        **(result["routing"].model_dump() if result.get("routing") else {}),
        "applied": result["applied"].model_dump() if result.get("applied") else None,
        "errors": result.get("errors") or [],
        "extensions": result.get("extensions") or {},
    }


@app.command()
@friendly_errors
def label(
    file: Annotated[str, typer.Argument(help="An .eml or mbox file, or - for standard input.")],
    labels: LabelsOpt = None,
    compact: Annotated[bool, typer.Option(help="One line of JSON per message.")] = False,
) -> None:
    """Decide and explain the label of one message (or each message of an mbox) as JSON. Touches no mailbox.

    Input is read, split and parsed before the model loads, so unusable input is refused at once. In an
    mbox, a message that cannot be parsed is reported as {"index", "error"} and the others are labeled."""
    from labelrouter.graph.context import build_context
    from labelrouter.limits import describe_error
    from labelrouter.mail.parse import split_messages
    from labelrouter.pipeline import Labeler, parse_raw

    if file == "-":
        raw = sys.stdin.buffer.read()
    else:
        try:
            raw = Path(file).read_bytes()
        except OSError as exc:
            raise LabelRouterError(f"cannot read {file}: {exc.strerror}") from None
    settings = _settings(labels)
    labels_set = load_label_set(settings.labels_path)  # a broken config is refused before the model loads
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
        labeler = Labeler(build_context(settings, mode="decide", labels=labels_set), settings)
    for index, message in enumerate(parsed):
        if isinstance(message, Exception):
            results.append({"index": index, "error": describe_error(message)})
            continue
        try:
            results.append(explanation(labeler.label(message)))
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


def _progress() -> Progress:
    return Progress(TextColumn("[bold]labeling"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=err, transient=True)


def _run(settings: Settings, mailbox_path: Path, dry_run: bool, limit: int | None, wait_s: float = 0.0) -> Any:
    from labelrouter.graph.context import build_context
    from labelrouter.labels import load_label_set
    from labelrouter.mail.maildir import LocalMaildir
    from labelrouter.pipeline import Labeler
    from labelrouter.store import open_store

    labels = load_label_set(settings.labels_path)  # a broken config fails before anything is created
    mailbox = LocalMaildir(mailbox_path, create=False)
    # A second run on this mailbox is refused (or waits) before the model loads.
    with contextlib.nullcontext() if dry_run else mailbox.lock(wait_s):
        store = open_store(settings, create=not dry_run)  # a dry run creates no store
        try:
            ctx = build_context(settings, mode="dry-run" if dry_run else "apply", mailbox=mailbox, store=store,
                                labels=labels)
            labeler = Labeler(ctx, settings)
            with _progress() as progress:
                task = progress.add_task("labeling", total=None)
                return labeler.run_mailbox(
                    limit=limit, on_total=lambda n: progress.update(task, total=n),
                    progress=lambda n: progress.advance(task, n), wait_s=wait_s,
                )
        finally:
            if store is not None:
                store.close()


def _report_table(report: Any, expected: dict[str, str] | None = None) -> Table:
    table = Table(show_lines=False)
    table.add_column("subject", overflow="fold", max_width=48)
    table.add_column("label")
    table.add_column("conf", justify="right")
    table.add_column("status")
    if expected is not None:
        table.add_column("expected")
    for o in report.outcomes:
        label_text = (o.label or "-") + (" (fallback)" if o.fallback else "")
        row = [o.subject or o.message_id, label_text, f"{o.confidence:.2f}" if o.confidence is not None else "-",
               o.status if not o.error else f"failed: {o.error[:60]}"]
        if expected is not None:
            want = expected.get(o.message_id, "?")
            row.append(("[green]✓[/] " if want == o.label else "[red]✗[/] ") + want)
        table.add_row(*row)
    return table


def _summary_line(report: Any) -> str:
    repaired = f"{report.count('repaired')} repaired, " if report.count("repaired") else ""
    return (f"{len(report.outcomes)} processed: {report.count('applied')} labeled, {repaired}"
            f"{report.count('unchanged')} unchanged, {report.count('dry-run')} dry-run, "
            f"{report.count('failed')} failed; {report.already_processed} already processed before")


@app.command()
@friendly_errors
def run(
    mailbox: Annotated[Path | None, typer.Option(help="Maildir to label (default: <home>/mailbox).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Decide and show, change nothing.")] = False,
    limit: Annotated[int | None, typer.Option(min=1, help="Label at most this many messages.")] = None,
    labels: LabelsOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print outcomes as JSON lines.")] = False,
    wait: Annotated[float, typer.Option("--wait", min=0, help="Seconds to wait for another run on this mailbox to finish (default: exit at once).")] = 0.0,
) -> None:
    """Label every unprocessed message of the configured mailbox (exactly once; failures are recorded).

    One run per mailbox at a time: a second one exits with a one-line message (or waits up to --wait)."""
    settings = _settings(labels)
    report = _run(settings, mailbox or settings.resolved_mailbox_path, dry_run, limit, wait)
    if as_json:
        for o in report.outcomes:
            typer.echo(json.dumps(o.__dict__, ensure_ascii=False))
    else:
        if report.outcomes:
            out.print(_report_table(report))
        out.print(_summary_line(report))
    if report.count("failed"):
        raise typer.Exit(1)


@app.command()
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

    builders = {"inference": lambda: build_inference_graph(extensions=load_extensions(_settings().extensions)),
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


@app.command()
@friendly_errors
def demo(
    directory: Annotated[Path, typer.Option("--dir", help="Where to create the demo mailbox and store.")] = Path(
        ".labelrouter/demo"),
    labels: LabelsOpt = None,
) -> None:
    """Create a sample mailbox (mail we wrote), label it on the embedded default and print a table."""
    from labelrouter.demo import create_sample_mailbox

    expected = create_sample_mailbox(directory / "mailbox")
    (directory / "labelrouter.sqlite3").unlink(missing_ok=True)
    settings = _settings(labels, home=directory, models_dir=directory / "models")
    report = _run(settings, directory / "mailbox", False, None)
    out.print(_report_table(report, expected))
    correct = sum(1 for o in report.outcomes if expected.get(o.message_id) == o.label)
    out.print(_summary_line(report))
    out.print(f"matches the label we expected for {correct}/{len(report.outcomes)} messages "
              f"(cold start: no corrections yet). Maildir: {directory / 'mailbox'}")


@app.command("import")
@friendly_errors
def import_(
    messages: Annotated[Path, typer.Option("--messages", help="JSONL or JSONL.gz, one labeled message a line.")],
    taxonomy: Annotated[Path, typer.Option("--taxonomy", help="taxonomy.json of the set.")],
    oos_label: Annotated[str | None, typer.Option("--oos-label", help="Label of out-of-scope rows (skipped).")] = None,
    labels: LabelsOpt = None,
) -> None:
    """Import a labeled set (../shared/data format) as gold examples for training; embeds each row once."""
    from labelrouter.models.encoder import encoder_for
    from labelrouter.store import open_store
    from labelrouter.training.importer import import_examples, read_labeled_set

    settings = _settings(labels)
    data = read_labeled_set(messages, taxonomy, oos_label=oos_label)  # validated before anything is written
    configured = load_label_set(settings.labels_path)
    outside = sorted({r["label"] for r in data.rows if r["label"] not in configured and r["label"] != oos_label})
    if len(outside) == len({r["label"] for r in data.rows if r["label"] != oos_label}):
        raise LabelRouterError(f"none of the set's labels is in {settings.labels_path}; train would ignore them all")
    encoder = encoder_for(settings)
    store = open_store(settings)
    try:
        with Progress(TextColumn("[bold]embedding"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=err, transient=True) as progress:
            task = progress.add_task("embedding", total=sum(1 for r in data.rows if r["label"] != oos_label))
            count = import_examples(store, encoder, data, snippet_chars=settings.snippet_chars,
                                    progress=lambda n: progress.advance(task, n))
    finally:
        store.close()
    out.print(f"imported {count} gold examples from {data.name}"
              + (f"; {len(outside)} of its labels are not configured and will not be trained" if outside else ""))


@app.command()
@friendly_errors
def train(labels: LabelsOpt = None) -> None:
    """Run the training graph: mine examples, train a head, evaluate it, promote it only if it is better."""
    from labelrouter.store import open_store
    from labelrouter.training import build_training_context, run_training

    settings = _settings(labels)
    labels_set = load_label_set(settings.labels_path)
    store = open_store(settings)
    try:
        ctx = build_training_context(settings, store, labels=labels_set)
        with err.status("training") as status:
            state = run_training(ctx, on_node=lambda node: status.update(f"training: {node} done"))
    finally:
        store.close()
    typer.echo(json.dumps(state.model_dump(exclude={"train_ids", "val_ids"}), indent=2, ensure_ascii=False))


@app.command("eval")
@friendly_errors
def eval_(
    messages: Annotated[Path, typer.Option("--messages", help="JSONL or JSONL.gz, one labeled message a line.")],
    taxonomy: Annotated[Path, typer.Option("--taxonomy", help="taxonomy.json of the set.")],
    protocol: Annotated[str, typer.Option(help="cold, fewshot or full; several comma-separated share one embedding pass.")] = "full",
    k: Annotated[str, typer.Option("--k", help="Few-shot examples per label, comma-separated.")] = "1,2,4,8,16",
    oos_label: Annotated[str | None, typer.Option("--oos-label", help="Rows that should get the fallback.")] = None,
    seeds: Annotated[int, typer.Option(min=5, help="Random draws per k (few-shot).")] = 5,
    target_precision: Annotated[float, typer.Option(min=0.0, max=1.0, help="Precision of non-fallback decisions the validation threshold aims at.")] = 0.90,
    out_dir: Annotated[Path, typer.Option("--out", help="Where metrics.json, report.md and plots go.")] = Path("eval-out"),
) -> None:
    """Evaluate the router, the head, router × head, a blend and baselines on a labeled set, in one run."""
    from labelrouter.evaluation import Evaluator, write_outputs
    from labelrouter.models.encoder import encoder_for
    from labelrouter.models.scoring import ScoringParams
    from labelrouter.training.importer import read_labeled_set

    protocols = [p.strip() for p in protocol.split(",") if p.strip()]
    unknown = [p for p in protocols if p not in ("cold", "fewshot", "full")]
    if unknown or not protocols:
        raise LabelRouterError(f"unknown protocol {','.join(unknown) or protocol!r}: use cold, fewshot or full")
    try:
        ks = sorted({int(x) for x in k.split(",") if x.strip()})
    except ValueError:
        raise LabelRouterError(f"--k takes whole numbers separated by commas, got {k!r}") from None
    settings = _settings()
    data = read_labeled_set(messages, taxonomy, oos_label=oos_label)
    encoder = encoder_for(settings)
    params = ScoringParams(settings.top_k, settings.sim_center, settings.sim_scale, settings.fallback_threshold)
    with err.status("evaluating") as status:
        evaluator = Evaluator(data, encoder, params, seeds=seeds, target_precision=target_precision,
                              progress=status.update)
        reports = {p: evaluator.run(p, ks) for p in protocols}
    for name, report in reports.items():
        target = out_dir if len(reports) == 1 else out_dir / name
        for path in write_outputs(report, target):
            out.print(f"wrote {path}")
        out.print((target / "report.md").read_text())


labels_app = typer.Typer(help="Change the label list: add, rename, merge (config, mailbox, store and head together).",
                         no_args_is_help=True)
app.add_typer(labels_app, name="labels")


@contextmanager
def _change_targets(settings: Settings) -> Iterator[Any]:
    from labelrouter.label_changes import Targets
    from labelrouter.mail.maildir import LocalMaildir
    from labelrouter.models.encoder import encoder_for
    from labelrouter.store import open_store

    encoder = encoder_for(settings)
    mailbox_dir = settings.resolved_mailbox_path
    store = open_store(settings, create=False)
    try:
        yield Targets(
            labels_path=settings.labels_path, registry=_registry(settings), embedder=encoder.version,
            dim=encoder.dim, store=store,
            mailbox=LocalMaildir(mailbox_dir, create=False) if (mailbox_dir / "cur").is_dir() else None,
        )
    finally:
        if store is not None:
            store.close()


@labels_app.command("add")
@friendly_errors
def labels_add(
    name: Annotated[str, typer.Argument(help="The new label's name.")],
    parent: Annotated[str | None, typer.Option("--parent", help="Its category (a node of labels.json).")] = None,
    description: Annotated[str, typer.Option("--description", help="What mail belongs there.")] = "",
    archive: Annotated[bool, typer.Option("--archive", help="Archive messages given this label.")] = False,
    labels: LabelsOpt = None,
) -> None:
    """Add a label: routable at once from its description; the head grows an output that does not dominate."""
    from labelrouter.label_changes import add_label

    with _change_targets(_settings(labels)) as targets:
        version = add_label(targets, name, parent=parent, description=description, archive=archive)
    out.print(f"added {name!r}; current head: {version}")


@labels_app.command("rename")
@friendly_errors
def labels_rename(old: str, new: str, labels: LabelsOpt = None) -> None:
    """Rename a label in the config, the mailbox, the stored examples and decisions, and the head."""
    from labelrouter.label_changes import rename_label

    with _change_targets(_settings(labels)) as targets:
        version = rename_label(targets, old, new)
    out.print(f"renamed {old!r} → {new!r}; current head: {version}")


@labels_app.command("merge")
@friendly_errors
def labels_merge(source: str, into: Annotated[str, typer.Argument(help="The label that remains.")],
                 labels: LabelsOpt = None) -> None:
    """Merge SOURCE into INTO: its mail, examples and decisions become INTO's; SOURCE is removed."""
    from labelrouter.label_changes import merge_labels

    with _change_targets(_settings(labels)) as targets:
        version = merge_labels(targets, source, into)
    out.print(f"merged {source!r} into {into!r}; current head: {version}")


def _registry(settings: Settings) -> Any:
    from labelrouter.artifacts import open_artifacts
    from labelrouter.models.registry import ModelRegistry

    return ModelRegistry(open_artifacts(settings))


models_app = typer.Typer(help="List promoted heads, or roll back.", no_args_is_help=False)
app.add_typer(models_app, name="models")


def _number(value: Any, digits: int) -> str:
    """A metric for a table cell; anything that is not a number shows as '-'."""
    return f"{value:.{digits}f}" if isinstance(value, int | float) and not isinstance(value, bool) else "-"


@models_app.callback(invoke_without_command=True)
@friendly_errors
def models_list(context: typer.Context) -> None:
    """List head versions with their validation metrics (current one marked)."""
    if context.invoked_subcommand is not None:
        return
    settings = _settings()
    table = Table()
    for column in ("version", "current", "created", "top-1", "Recall@K", "threshold", "archive", "n_train"):
        table.add_column(column)
    versions = _registry(settings).list_versions()
    for meta in versions:
        metrics = meta.get("metrics") if isinstance(meta.get("metrics"), dict) else {}
        val = metrics.get("validation") if isinstance(metrics.get("validation"), dict) else {}
        thresholds = meta.get("thresholds") or {}
        created = str(meta.get("created_at", "")) if "error" not in meta else f"[red]damaged: {meta['error']}[/]"
        table.add_row(str(meta.get("version")), "✓" if meta["current"] else "", created,
                      _number(val.get("top1"), 4), _number(val.get("recall@k"), 4),
                      _number(thresholds.get("fallback"), 3), _number(thresholds.get("archive"), 3),
                      str(metrics.get("n_train", "")))
    if table.row_count:
        out.print(table)
    current = next((m["version"] for m in versions if m["current"]), None)
    out.print(f"current head: {current}" if current else
              "current head: cold-start (1.0 for every label; no head promoted, or rolled back to none)")


@models_app.command("promote")
@friendly_errors
def models_promote(version: Annotated[str, typer.Argument(help="A stored version (see `labelrouter models`).")]) -> None:
    """Make a stored version current again (e.g. one that was rolled back)."""
    _registry(_settings()).repromote(version)
    out.print(f"current head: {version}")


@models_app.command("rollback")
@friendly_errors
def models_rollback() -> None:
    """Make the previously promoted head current again (or the cold-start head)."""
    now = _registry(_settings()).rollback()
    out.print(f"current head: {now or 'cold-start'}")


def main() -> None:
    app()
