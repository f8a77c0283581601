"""`labelrouter import`, `train` and `eval`: labeled sets in, heads trained and promoted, measurements out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from labelrouter.cli import backends
from labelrouter.cli.common import LabelsOpt, err, friendly_errors, out, progress, settings_for
from labelrouter.errors import LabelRouterError
from labelrouter.settings import MIN_COVERAGE

MessagesOpt = Annotated[Path, typer.Option("--messages", help="JSONL or JSONL.gz, one labeled message a line.")]
TaxonomyOpt = Annotated[Path, typer.Option("--taxonomy", help="taxonomy.json of the set.")]


@friendly_errors
def import_(
    messages: MessagesOpt,
    taxonomy: TaxonomyOpt,
    oos_label: Annotated[str | None, typer.Option("--oos-label", help="Label of out-of-scope rows (skipped).")] = None,
    labels: LabelsOpt = None,
) -> None:
    """Import a labeled set (../shared/data format) as gold examples for training; embeds each row once."""
    from labelrouter.training.importer import import_examples, read_labeled_set

    settings = settings_for(labels)
    data = read_labeled_set(messages, taxonomy, oos_label=oos_label)  # validated before anything is written
    configured = backends.labels(settings)
    in_scope = {r["label"] for r in data.rows if r["label"] != oos_label}
    outside = sorted(name for name in in_scope if name not in configured)
    if len(outside) == len(in_scope):
        fallback = f" --fallback {oos_label}" if oos_label else ""
        raise LabelRouterError(
            f"none of the set's labels is in {settings.labels_path}; to work with the set's own labels, "
            f"`labelrouter init --taxonomy {taxonomy}{fallback}` writes them to config/labels.json")
    encoder = backends.serving_encoder(settings)  # examples are stored as the current model embeds
    store = backends.store(settings)
    try:
        with progress("embedding") as bar:
            task = bar.add_task("embedding", total=sum(1 for r in data.rows if r["label"] != oos_label))
            count = import_examples(store, encoder, data, snippet_chars=settings.snippet_chars,
                                    progress=lambda n: bar.advance(task, n))
    finally:
        store.close()
    out.print(f"imported {count} gold examples from {data.name}"
              + (f"; {len(outside)} of its labels are not configured and will not be trained" if outside else ""))




@friendly_errors
def train(
    stages: Annotated[str, typer.Option(help="head (nightly: seconds), retrieval (weekly: the bi-encoder is "
                                             "fine-tuned, the examples re-embedded, and encoder + head judged as one "
                                             "bundle), rerank (a cross-encoder joins the bundle if validation gains) "
                                             "or all.")] = "head",
    steps: Annotated[int, typer.Option(min=1, help="Retrieval and rerank budget: optimizer steps at most.")] = 200,
    examples: Annotated[int, typer.Option(min=2, help="Retrieval and rerank budget: training examples at most.")] = 4_000,
    minutes: Annotated[float, typer.Option(min=0.0, help="Retrieval and rerank budget: minutes of training at most.")] = 30.0,
    labels: LabelsOpt = None,
) -> None:
    """Run the training graph: mine examples, train a head (and with --stages retrieval a bi-encoder, with
    rerank a cross-encoder), evaluate it against the current model, promote it only if it is better."""
    from labelrouter.training import STAGES
    from labelrouter.training.budget import Budget
    from labelrouter.usecases import train as train_mailbox

    if stages not in STAGES:
        raise LabelRouterError(f"--stages takes head, retrieval, rerank or all, not {stages!r}")
    settings = settings_for(labels)
    label_set = backends.labels(settings)
    store = backends.store(settings)
    try:
        with err.status("training") as status:
            state = train_mailbox(settings, store, label_set, stages=stages, progress=status.update,
                                  on_node=lambda node: status.update(f"training: {node} done"),
                                  retrieval_budget=Budget(steps=steps, examples=examples, minutes=minutes))
    finally:
        store.close()
    typer.echo(json.dumps(state.model_dump(exclude={"example_ids", "train_ids", "val_ids"}), indent=2,
                          ensure_ascii=False))


@friendly_errors
def eval_(
    messages: MessagesOpt,
    taxonomy: TaxonomyOpt,
    protocol: Annotated[str, typer.Option(help="cold, fewshot or full; several comma-separated share one embedding pass.")] = "full",
    k: Annotated[str, typer.Option("--k", help="Few-shot examples per label, comma-separated.")] = "1,2,4,8,16",
    oos_label: Annotated[str | None, typer.Option("--oos-label", help="Rows that should get the fallback.")] = None,
    seeds: Annotated[int, typer.Option(min=5, help="Random draws per k (few-shot).")] = 5,
    target_precision: Annotated[float, typer.Option(min=0.0, max=1.0, help="Precision of non-fallback decisions the validation threshold aims at.")] = 0.90,
    out_dir: Annotated[Path, typer.Option("--out", help="Where metrics.json, report.md and plots go.")] = Path("eval-out"),
    correction_rate: Annotated[float, typer.Option("--correction-rate", min=0.0, max=1.0, help="Stream: the chance the user looks at a message (and corrects it when it is wrong).")] = 1.0,
    reads: Annotated[bool, typer.Option("--reads/--no-reads", help="Stream: the user reads the messages they look at, so right labels are confirmed (--no-reads: they open only wrong ones).")] = True,
    train_every: Annotated[int, typer.Option("--train-every", min=1, help="Stream: messages between sync, mining and training.")] = 100,
    silver: Annotated[bool, typer.Option("--silver/--no-silver", help="Stream: mine silver examples (off by default, as in sync).")] = False,
    min_coverage: Annotated[float, typer.Option("--min-coverage", min=0.0, max=1.0, help="Fallback policy: the share of messages that keep a real label even below the target precision.")] = MIN_COVERAGE,
    fallback_on: Annotated[str, typer.Option("--fallback-on", help="Fallback policy: the statistic a trained head's threshold is on (auto: chosen on validation; confidence; margin).")] = "auto",
    cache: Annotated[bool, typer.Option("--cache/--no-cache", help="Reuse this encoder's vectors of the same texts from <home>/cache/eval-embeddings.")] = True,
    keep: Annotated[Path | None, typer.Option("--keep", help="Stream: run in this new directory and keep it (its home/ holds the store: LABELROUTER_HOME=DIR/home labelrouter report).")] = None,
) -> None:
    """Evaluate the router, the head, router × head, a blend and baselines on a labeled set, in one run."""
    from labelrouter.evaluation.protocols import Evaluator, write_outputs
    from labelrouter.models.router import scoring_params
    from labelrouter.models.scoring import FALLBACK_ON, FALLBACK_ON_CHOICES
    from labelrouter.training.importer import read_labeled_set

    protocols = [p.strip() for p in protocol.split(",") if p.strip()]
    unknown = [p for p in protocols if p not in ("cold", "fewshot", "full", "stream")]
    if unknown or not protocols:
        raise LabelRouterError(f"unknown protocol {','.join(unknown) or protocol!r}: use cold, fewshot, full or stream")
    if fallback_on not in FALLBACK_ON:
        raise LabelRouterError(f"--fallback-on {fallback_on!r}: use {FALLBACK_ON_CHOICES}")
    if "stream" in protocols:
        if len(protocols) > 1:
            raise LabelRouterError("the stream protocol runs on its own: --protocol stream")
        _stream(messages, taxonomy, oos_label, correction_rate, train_every, silver, min_coverage, reads, out_dir, keep,
                fallback_on)
        return
    try:
        ks = sorted({int(x) for x in k.split(",") if x.strip()})
    except ValueError:
        raise LabelRouterError(f"--k takes whole numbers separated by commas, got {k!r}") from None
    settings = settings_for()
    data = read_labeled_set(messages, taxonomy, oos_label=oos_label)
    encoder = backends.encoder(settings)
    with err.status("evaluating") as status:
        evaluator = Evaluator(data, encoder, scoring_params(settings), seeds=seeds, target_precision=target_precision,
                              min_coverage=min_coverage, fallback_on=fallback_on, progress=status.update,
                              cache_dir=settings.resolved_cache_dir / "eval-embeddings" if cache else None)
        reports = {p: evaluator.run(p, ks) for p in protocols}
    for name, report in reports.items():
        target = out_dir if len(reports) == 1 else out_dir / name
        for path in write_outputs(report, target):
            out.print(f"wrote {path}")
        out.print((target / "report.md").read_text())


def _stream(messages: Path, taxonomy: Path, oos_label: str | None, correction_rate: float, train_every: int,
            silver: bool, min_coverage: float, reads: bool, out_dir: Path, keep: Path | None = None,
            fallback_on: str = "auto") -> None:
    """The stream protocol through the real loop, in a fresh temporary home and Maildir (or `keep`)."""
    import contextlib
    import tempfile

    from labelrouter.evaluation.stream import StreamConfig, run_stream, write_stream_outputs
    from labelrouter.training.importer import read_labeled_set

    settings = settings_for()
    data = read_labeled_set(messages, taxonomy, oos_label=oos_label)
    encoder = backends.encoder(settings)
    config = StreamConfig(correction_rate=correction_rate, train_every=train_every, silver=silver,
                          min_coverage=min_coverage, fallback_on=fallback_on, reads=reads)
    if keep is not None and keep.exists() and any(keep.iterdir()):
        raise LabelRouterError(f"--keep {keep}: the stream needs a new (or empty) directory")
    place = contextlib.nullcontext(str(keep)) if keep is not None else tempfile.TemporaryDirectory(prefix="labelrouter-stream-")
    with place as work, err.status("stream") as status:
        Path(work).mkdir(parents=True, exist_ok=True)
        report = run_stream(data, encoder, Path(work), config, progress=status.update)
    for path in write_stream_outputs(report, out_dir):
        out.print(f"wrote {path}")
    out.print((out_dir / "report.md").read_text())
