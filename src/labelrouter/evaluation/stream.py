"""The stream evaluation through the real loop (`labelrouter eval --protocol stream`).

Messages in date order are delivered, `train_every` at a time, into a fresh local Maildir and labeled by
the real `run` path (graph, store, mailbox). "The user" then looks at each message with probability R,
as a person reads their mail: a wrong label (the fallback counts as wrong) they move to the true one, a
right one they leave, the message read — a confirmation to mining, as in a real mailbox (`reads=False`:
they open only the wrong ones, so training sees corrections alone); the real sync, mining and training graph
run; the next messages are labeled by whatever was promoted. Reported: prequential accuracy (each
message judged before anything learned from it) overall and per window, coverage (non-fallback share),
the share of corrections whose true label the router did not even retrieve, silver precision, and two
baselines retrained at the same points on the same corrections: word TF-IDF + linear SVM and logistic
regression on the frozen embeddings.
"""

from __future__ import annotations

import json
import os
import random
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage as Mime
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import numpy as np

from labelrouter.evaluation.baselines import tfidf_svm
from labelrouter.evaluation.metrics import aurc, risk_coverage
from labelrouter.evaluation.splits import time_order
from labelrouter.feedback import MiningPolicy, sync_and_mine
from labelrouter.graph.labeler import Labeler
from labelrouter.graph.mailbox_run import MailboxRun
from labelrouter.graph.wiring import build_context
from labelrouter.labels import Label, LabelSet, load_label_set
from labelrouter.mail.maildir import LocalMaildir, folder_name
from labelrouter.models.encoder import Encoder
from labelrouter.settings import MIN_COVERAGE, load_settings
from labelrouter.store import open_store
from labelrouter.store.records import decode_embedding
from labelrouter.training import build_training_context, run_training
from labelrouter.training.importer import LabeledSet, row_text
from labelrouter.util.moments import parse_moment

WITH_SILVER = MiningPolicy(silver=True)


@dataclass(frozen=True)
class StreamConfig:
    correction_rate: float = 1.0
    train_every: int = 100
    seed: int = 0
    silver: bool = False
    min_coverage: float = MIN_COVERAGE
    fallback_on: str = "auto"
    reads: bool = True  # the user reads the messages they look at, right ones included
    record: bool = False  # the report lists every message's truth and label (`outcomes`), for `scenarios`


def _when(row: dict[str, Any], fallback: datetime) -> datetime:
    return parse_moment(row.get("date")) or fallback


def _mime(row: dict[str, Any], when: datetime) -> bytes:
    mail = Mime()
    mail["From"] = str(row.get("sender") or "someone@example.com")
    mail["To"] = str(row.get("to") or "me@example.com")
    if row.get("cc"):
        mail["Cc"] = str(row["cc"])
    mail["Subject"] = str(row.get("subject") or "")
    mail["Date"] = format_datetime(when)
    mail.set_content(str(row.get("body") or ""))
    return mail.as_bytes()


def _baselines(train_texts: list[str], train_X: np.ndarray, train_y: list[str], texts: list[str],
               X: np.ndarray) -> dict[str, tuple[list[str | None], np.ndarray]]:
    """TF-IDF + linear SVM and frozen-embedding LR fit on the examples so far: each one's labels for the
    chunk, and its own margin (its best score's lead over the runner-up), by which it would rank the chunk
    for a fallback of its own. Before there are 2 labels there is no model: None, and a margin of −∞ (it
    would fall back on that mail first)."""
    if len(set(train_y)) < 2:
        nothing: tuple[list[str | None], np.ndarray] = ([None] * len(texts), np.full(len(texts), -np.inf))
        return {"tfidf_svm": nothing, "frozen_lr": nothing}
    from sklearn.linear_model import LogisticRegression

    svm = tfidf_svm(train_texts, train_y)
    lr = LogisticRegression(C=10.0, max_iter=1000).fit(train_X, train_y)
    return {"tfidf_svm": (list(svm.predict(texts)), _lead(svm.decision_function(texts))),
            "frozen_lr": (list(lr.predict(X)), _lead(lr.predict_proba(X)))}


def _lead(scores: np.ndarray) -> np.ndarray:
    """(n,) the best score's lead over the runner-up (a binary decision function: its distance from 0)."""
    scores = np.asarray(scores, dtype=float)
    if scores.ndim == 1:
        return np.abs(scores)
    top2 = np.sort(scores, axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0]


def at_coverage(margins: np.ndarray, right: np.ndarray, coverage: float) -> float | None:
    """Precision of the decisions a classifier keeps when it labels only the `coverage` share it is surest
    of (by its own margin) and falls back on the rest: how a plain classifier with a fallback of its own
    would do at labelrouter's coverage."""
    if not len(right):
        return None
    keep = max(1, int(round(coverage * len(right))))
    order = np.argsort(-np.asarray(margins, dtype=float), kind="stable")[:keep]
    return float(np.asarray(right, dtype=bool)[order].mean())


def run_stream(data: LabeledSet, encoder: Encoder, work: Path, config: StreamConfig,
               progress: Callable[[str], None] | None = None,
               events: Mapping[int, tuple[str, ...]] | None = None) -> dict[str, Any]:
    """Run the stream in `work` (a fresh directory) and return the report. `events`: what the user does to
    labelrouter before the chunk holding that message index is delivered — ("rename", old, new) runs the
    real `labels rename`; the stream's later truths follow the new name."""
    progress = progress or (lambda _m: None)
    fallback = data.oos_label or "other"
    labels = data.taxonomy if fallback in data.taxonomy else LabelSet(
        (*data.taxonomy.labels, Label(fallback, None, "Mail that fits no other label")), data.taxonomy.nodes, fallback)
    labels = LabelSet(labels.labels, labels.nodes, fallback)
    labels_path = work / "labels.json"
    labels_path.write_text(json.dumps(labels.to_json(), ensure_ascii=False), encoding="utf-8")
    settings = load_settings(home=work / "home", labels_path=labels_path, mailbox_path=work / "mailbox",
                             mailbox_ids_path=work / "mailbox_ids.json", min_coverage=config.min_coverage,
                             fallback_on=config.fallback_on)
    store = open_store(settings)
    box = LocalMaildir(work / "mailbox")
    box.ensure_labels(labels.names)
    rng = random.Random(config.seed)
    start_real = datetime.now(UTC)
    first = _when(data.rows[0], start_real) if data.rows else start_real
    order = time_order(range(len(data.rows)), [r.get("date") for r in data.rows], seed=config.seed)
    policy = WITH_SILVER if config.silver else None
    windows: list[dict[str, Any]] = []
    decisions: list[str] = []
    truth_of: dict[str, str] = {}
    baseline_hits = {"tfidf_svm": 0, "frozen_lr": 0}
    baseline_ranked: dict[str, list[tuple[bool, float]]] = {"tfidf_svm": [], "frozen_lr": []}  # right?, margin
    outcomes: list[dict[str, Any]] = []
    renamed: dict[str, str] = {}
    pending = sorted((events or {}).items())
    totals = {"n": 0, "correct": 0, "covered": 0, "corrections": 0, "outside_topk": 0}
    judged: list[tuple[bool, float, float, str]] = []  # top label right?, confidence, margin, rule in force
    for start in range(0, len(order), config.train_every):
        while pending and pending[0][0] < start + config.train_every:
            labels = _apply_event(pending.pop(0)[1], settings, store, box, encoder, labels_path, renamed)
        chunk = [data.rows[i] for i in order[start : start + config.train_every]]
        ids = []
        for row in chunk:
            mid = box.deliver(_mime(row, _when(row, first)))
            truth_of[mid] = renamed.get(row["label"], row["label"])
            ids.append(mid)
        ctx = build_context(settings, mode="apply", mailbox=box, store=store, labels=labels, encoder=encoder)
        with Labeler(ctx, settings) as labeler:
            report = MailboxRun(labeler).run_mailbox()
        decided = {o.message_id: o for o in report.outcomes if o.status != "failed"}
        stored = {mid: store.get(mid) for mid in ids}
        # Baselines trained at the last point predict this chunk (prequential, like the loop).
        examples = [e for e in store.examples(encoder.version) if e["kind"] in ("correction", "confirmation")]
        chunk_X = np.vstack([decode_embedding(stored[m]["embedding"]) if stored[m] and stored[m]["embedding"]
                             else np.zeros(encoder.dim, np.float32) for m in ids])
        predicted = _baselines([e["embedded_text"] or "" for e in examples],
                               np.vstack([decode_embedding(e["embedding"]) for e in examples]) if examples
                               else np.zeros((0, encoder.dim)), [e["label"] for e in examples],
                               [row_text(r) for r in chunk], chunk_X)
        window = {"start": start, "n": len(ids), "correct": 0, "covered": 0}
        for name, (preds, margins) in predicted.items():
            right_ = [p == truth_of[m] for p, m in zip(preds, ids, strict=True)]
            window[name] = sum(right_) / len(ids)
            baseline_hits[name] += sum(right_)
            baseline_ranked[name] += zip(right_, margins.tolist(), strict=True)
        for mid in ids:
            outcome, row = decided.get(mid), stored[mid]
            truth = truth_of[mid]
            label = outcome.label if outcome else None
            right = label == truth and not (outcome and outcome.fallback)
            window["correct"] += right
            if outcome and row and row["confidence"] is not None:
                judged.append((row["top_label"] == truth, row["confidence"], row["margin"] or 0.0,
                               row["fallback_on"] or "confidence"))
            window["covered"] += bool(outcome and not outcome.fallback)
            if config.record:
                outcomes.append({"truth": truth, "label": label, "fallback": bool(outcome and outcome.fallback)})
            if label is None or rng.random() >= config.correction_rate:
                continue  # failed (recorded as such), or the user did not look at it
            if right:
                if config.reads:
                    _read(box, mid)
                continue
            if truth == fallback:
                continue  # mail that fits no label: left as it is (not a confirmation of ours)
            candidates = [c["label"] for c in json.loads(row["candidates"] or "[]")] if row else []
            totals["outside_topk"] += truth not in candidates
            totals["corrections"] += 1
            _move(box, mid, label, truth, read=config.reads)
        windows.append({**window, "accuracy": window["correct"] / len(ids), "coverage": window["covered"] / len(ids)})
        totals["n"] += len(ids)
        totals["correct"] += window["correct"]
        totals["covered"] += window["covered"]
        simulated = start_real + (max(_when(r, first) for r in chunk) - first) + timedelta(minutes=5)
        sync_and_mine(store, box, labels, policy=policy, clock=lambda simulated=simulated: simulated)
        state = run_training(build_training_context(settings, store, labels=labels, encoder=encoder))
        decisions.append(state.decision)
        progress(f"stream: {totals['n']}/{len(order)} messages, accuracy so far "
                 f"{totals['correct'] / totals['n']:.3f}; {state.decision or 'no training'}")
    mined = store.examples(encoder.version)
    silver = [e for e in mined if e["kind"] == "silver"]
    kinds = dict(sorted(Counter(e["kind"] for e in mined).items()))
    store.close()
    n = max(1, totals["n"])
    coverage = totals["covered"] / n
    report = {
        "dataset": data.name, "protocol": "stream", "correction_rate": config.correction_rate, "reads": config.reads,
        "train_every": config.train_every, "silver": config.silver, "n": totals["n"],
        "prequential_accuracy": totals["correct"] / n, "coverage": coverage,
        "precision": totals["correct"] / max(1, totals["covered"]),  # of the messages given a real label
        "corrections": totals["corrections"], **_fallback_statistics(judged),
        "corrections_outside_topk_share": totals["outside_topk"] / max(1, totals["corrections"]),
        "examples": kinds, "silver_examples": len(silver),
        "silver_precision": (sum(e["label"] == truth_of.get(e["message_id"]) for e in silver) / len(silver)
                             if silver else None),
        "baselines": {name: hits / n for name, hits in baseline_hits.items()},
        "promotions": sum(d.startswith("promoted") for d in decisions), "training_decisions": decisions,
        "windows": windows,
        # Each baseline with a fallback of its own at labelrouter's coverage, ranked by its own margin: the
        # precision of the mail it would label (a fallback earns its place only where labelrouter's is higher).
        "baselines_at_coverage": {name: at_coverage(np.array([m for _, m in ranked]), np.array([r for r, _ in ranked]),
                                                    coverage) for name, ranked in baseline_ranked.items()},
        "baselines_risk_coverage": {name: risk_coverage(np.array([m for _, m in ranked]),
                                                        np.array([r for r, _ in ranked])) if ranked else []
                                    for name, ranked in baseline_ranked.items()},
    }
    if config.record:
        report["outcomes"] = outcomes
    return report


def _apply_event(event: tuple[str, ...], settings: Any, store: Any, box: LocalMaildir, encoder: Encoder,
                 labels_path: Path, renamed: dict[str, str]) -> LabelSet:
    """What the user does to labelrouter between two chunks; returns the label list after it."""
    from labelrouter.artifacts import open_artifacts
    from labelrouter.feedback.label_changes import Targets, rename_label
    from labelrouter.models.registry import ModelRegistry

    if event[0] != "rename" or len(event) != 3:
        raise ValueError(f"unknown stream event {event!r}: use ('rename', old, new)")
    old, new = event[1], event[2]
    targets = Targets(labels_path, ModelRegistry(open_artifacts(settings)), encoder.version, encoder.dim, store, (box,))
    rename_label(targets, old, new)
    renamed.update({k: new for k, v in renamed.items() if v == old} | {old: new})
    return load_label_set(labels_path)


def _fallback_statistics(judged: list[tuple[bool, float, float, str]]) -> dict[str, Any]:
    """How often the top label was right whatever the fallback did, and how well each statistic ordered the
    decisions, right before wrong (area under the risk–coverage curve, lower is better)."""
    if not judged:
        return {"top_label_accuracy": None, "aurc": None, "decisions_on": {}, "risk_coverage": []}
    right = np.array([j[0] for j in judged])
    margins = np.array([j[2] for j in judged])
    return {"top_label_accuracy": float(right.mean()),
            "aurc": {"confidence": aurc(np.array([j[1] for j in judged]), right), "margin": aurc(margins, right)},
            "decisions_on": dict(Counter(j[3] for j in judged)),
            # labelrouter's own curve, by its margin: beside the baselines' (`baselines_risk_coverage`)
            "risk_coverage": risk_coverage(margins, right)}


def _move(box: LocalMaildir, message_id: str, source: str, target: str, *, read: bool = False) -> None:
    """What the user does in their mail client: the message leaves our label's folder for the right one."""
    src = box.root / f".{folder_name(source)}"
    for sub in ("cur", "new"):
        folder = src / sub
        for name in os.listdir(folder) if folder.is_dir() else []:
            if name.split(":")[0] == message_id:
                os.rename(folder / name, box.root / f".{folder_name(target)}" / "cur" / name)
                break
    if read:
        _read(box, message_id)


def _read(box: LocalMaildir, message_id: str) -> None:
    """The user opens the message: every file of it (inbox and label folders) moves to cur/ with the
    Maildir Seen flag, as a mail client does."""
    for folder in (box.root, *box.root.glob(".*")):
        for sub in ("new", "cur"):
            directory = folder / sub
            for name in os.listdir(directory) if directory.is_dir() else []:
                unique, _, info = name.partition(":2,")
                if unique == message_id and "S" not in info:
                    os.rename(directory / name, folder / "cur" / f"{unique}:2,{''.join(sorted(info + 'S'))}")


def write_stream_outputs(report: dict[str, Any], out_dir: Path) -> list[Path]:
    """metrics.json, report.md and stream.png (accuracy per window: labelrouter and both baselines)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    lines = [f"# {report['dataset']}: stream, R = {report['correction_rate']}, train every {report['train_every']}",
             "", f"prequential accuracy {report['prequential_accuracy']:.4f}, coverage {report['coverage']:.4f}, "
             f"precision {report.get('precision', float('nan')):.4f}, "
             f"{report['corrections']} corrections ({report['corrections_outside_topk_share']:.1%} outside the "
             f"top-K), {report['promotions']} promotions; baselines: "
             + ", ".join(f"{k} {v:.4f}" for k, v in report["baselines"].items()), "",
             *([f"top label right (whatever the fallback did) {report['top_label_accuracy']:.4f}; area under the "
                "risk–coverage curve (lower: orders right before wrong better): "
                + ", ".join(f"{k} {v:.4f}" for k, v in report["aurc"].items())
                + "; decisions by rule: " + ", ".join(f"{k} {v}" for k, v in report["decisions_on"].items()), ""]
               if report.get("top_label_accuracy") is not None else []),
             *([f"at labelrouter's coverage ({report['coverage']:.3f}), the precision of the mail given a label: "
                f"labelrouter {report['precision']:.4f}; each baseline falling back on its least sure mail by its own "
                "margin: " + ", ".join(f"{k} {v:.4f}" for k, v in report["baselines_at_coverage"].items()
                                       if v is not None), ""]
               if report.get("baselines_at_coverage") else []),
             "| messages | labelrouter | coverage | TF-IDF + SVM | frozen LR |", "|---|---|---|---|---|"]
    for w in report["windows"]:
        lines.append(f"| {w['start']}–{w['start'] + w['n']} | {w['accuracy']:.3f} | {w['coverage']:.3f} | "
                     f"{w['tfidf_svm']:.3f} | {w['frozen_lr']:.3f} |")
    (out_dir / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    fig, ax = plt.subplots(figsize=(7, 4))
    x = [w["start"] + w["n"] for w in report["windows"]]
    for key, name in (("accuracy", "labelrouter (router × head)"), ("tfidf_svm", "TF-IDF + SVM"),
                      ("frozen_lr", "frozen-embedding LR")):
        ax.plot(x, [w[key] for w in report["windows"]], marker=".", label=name)
    ax.set(xlabel="messages delivered", ylabel="accuracy in the window (fallback = wrong)",
           title=f"{report['dataset']}: stream, R = {report['correction_rate']}")
    ax.legend()
    fig.savefig(out_dir / "stream.png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return [out_dir / "metrics.json", out_dir / "report.md", out_dir / "stream.png"]
