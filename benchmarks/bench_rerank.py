"""The cross-encoder reranker on a real labeled set: trained listwise on the train split's retrieved
candidate lists, then reranking each test message's top-K, against retrieval alone and the head, in one run.

    .venv/bin/python benchmarks/bench_rerank.py --set clinc150 --losses listnet,listnet-soft,lambda --steps 150[,600] [--k 8] [--device cuda]
        [--save bench-out/teacher-clinc150]   # keep the last configuration's cross-encoder (a teacher for bench_retrieval.py)

Per configuration: top-1 of the reranked top-K of router × head (the cross-encoder alone, and × the head's
weights), the share of errors that are sibling confusions, pairs and messages per second of reranking,
training steps, lists and seconds. Training lists are description retrieval's top-K (the truth injected):
harder than router × head's on the head's own training rows.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
from bench_retrieval import add_device_arguments, embed_batch, load_set  # noqa: E402 - benchmarks/ is the script's own folder

from labelrouter.evaluation.protocols import Evaluator  # noqa: E402
from labelrouter.models.encoder import load_encoder, packaged_encoder_path  # noqa: E402
from labelrouter.models.label_index import LabelIndex  # noqa: E402
from labelrouter.models.reranker import CrossEncoderReranker  # noqa: E402
from labelrouter.models.scoring import ScoringParams  # noqa: E402
from labelrouter.training.budget import Budget  # noqa: E402
from labelrouter.training.cross_encoder import listwise_rows, train_cross_encoder  # noqa: E402
from labelrouter.training.importer import row_text_and_document  # noqa: E402
from labelrouter.training.retrieval_data import KIND_WEIGHTS  # noqa: E402


def sibling_share(pred: np.ndarray, gold: np.ndarray, parents: list[str | None]) -> float:
    wrong = pred != gold
    if not wrong.any():
        return 0.0
    return float(np.mean([parents[p] is not None and parents[p] == parents[g] for p, g in zip(pred[wrong], gold[wrong],
                                                                                            strict=True)]))


def _candidates(ev: Evaluator, train: list[int], test: list[int], allowed: np.ndarray,
                k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What the reranker reranks: the top K of router × head, the candidates inference has once a head is
    trained (description retrieval alone finds the right intent in its top 8 for only 88 % of clinc150);
    with router × head's own choice and the head's weights of those K."""
    scores = ev._fit(train).score(ev.X[test], ev._docs(test))  # scores.head: the head's weights, computed once
    top_k = np.argsort(-np.where(allowed[None, :], scores.final, -np.inf), axis=1, kind="stable")[:, :k]
    return top_k, scores.top, scores.head[np.arange(len(test))[:, None], top_k]


def _read_candidates(path: Path, n: int, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with np.load(path, allow_pickle=False) as saved:
        top_k, top, head_at_k = saved["top_k"], saved["top"], saved["head_at_k"]
    if top_k.shape != (n, k):
        raise SystemExit(f"{path}: candidates for {top_k.shape}, this run has {(n, k)} (test limit and --k must match)")
    return top_k, top, head_at_k


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--set", default="clinc150")
    parser.add_argument("--losses", default="listnet,listnet-soft,lambda")
    parser.add_argument("--steps", default="150", help="training budgets in optimizer steps, comma-separated")
    parser.add_argument("--examples", type=int, default=4000)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--test-limit", type=int, default=2000, help="0: the whole test split")
    parser.add_argument("--cache", type=Path, default=Path(".labelrouter/cache/eval-embeddings"))
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--candidates", type=Path, default=None,
                        help="npz of the test messages' candidates: read when it exists, else computed and written")
    parser.add_argument("--save", type=Path, default=None, help="keep the last configuration's cross-encoder here")
    add_device_arguments(parser)
    args = parser.parse_args()

    data = load_set(args.set)
    encoder = load_encoder(None, args.device, "off", embed_batch(args))
    ev = Evaluator(data, encoder, ScoringParams(), cache_dir=args.cache)
    labels, parents = ev.labels, [label.parent for label in ev.labels.labels]
    train, test = ev._in_scope(ev.train), ev._in_scope(ev.test)[: args.test_limit or None]
    texts = [row_text_and_document(r)[0] for r in data.rows]
    index = LabelIndex.build(labels, encoder)
    allowed = np.zeros(len(labels), dtype=bool)
    allowed[index.labels.routable] = True
    gold = ev.gold[test]
    if args.candidates is not None and args.candidates.exists():
        top_k, top, head_at_k = _read_candidates(args.candidates, len(test), args.k)
    else:
        top_k, top, head_at_k = _candidates(ev, train, test, allowed, args.k)
        if args.candidates is not None:  # for a run elsewhere (a GPU machine) that need not fit the head again
            args.candidates.parent.mkdir(parents=True, exist_ok=True)
            np.savez(args.candidates, top_k=top_k, top=top, head_at_k=head_at_k)
    in_top = (top_k == gold[:, None]).any(axis=1)
    sims = index.similarities(ev.X[test])
    sims[:, ~allowed] = -np.inf
    results = {"set": args.set, "k": args.k, "test_messages": len(test),
               f"router_x_head_recall@{args.k}": float(in_top.mean()),
               "router_only_top1": float((sims.argmax(axis=1) == gold).mean()),
               "router_x_head_top1": float((top == gold).mean()),
               "router_x_head_sibling_error_share": sibling_share(top, gold, parents), "runs": []}
    print(json.dumps(results), flush=True)
    out = args.out or Path(f"bench-out/rerank-{args.set}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    rows = [{"example_id": str(data.rows[i]["id"]), "label": data.rows[i]["label"], "kind": "gold",
             "rejected_label": None, "embedded_text": texts[i]} for i in train]
    for spec, steps in [(spec, int(steps)) for steps in args.steps.split(",") for spec in args.losses.split(",") if spec]:
        loss, soft = spec.removesuffix("-soft"), spec.endswith("-soft")
        columns = listwise_rows(rows, ev.X[train], labels, index, k=args.k, loss=loss, soft=soft,
                                at_most=args.examples, kind_weights=KIND_WEIGHTS)
        with tempfile.TemporaryDirectory() as tmp:
            report = train_cross_encoder(packaged_encoder_path(), columns, Path(tmp) / "ce", loss=loss,
                                         budget=Budget(steps=steps, examples=args.examples, minutes=60),
                                         batch_size=args.batch_size, epochs=100, device=args.device,
                                         progress=lambda m: print(m, flush=True))
            reranker = CrossEncoderReranker(Path(tmp) / "ce", device=args.device, batch_size=embed_batch(args))
            start = time.perf_counter()
            scores = reranker.rerank([texts[i] for i in test], top_k, labels)
            rerank_s = time.perf_counter() - start
            if args.save is not None:
                shutil.rmtree(args.save, ignore_errors=True)
                shutil.copytree(Path(tmp) / "ce", args.save)
        pred = top_k[np.arange(len(test)), scores.argmax(axis=1)]
        p = np.exp(scores - scores.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        with_head = top_k[np.arange(len(test)), (p * head_at_k).argmax(axis=1)]
        run = {"loss": spec, "budget_steps": steps, "batch_size": args.batch_size, "training": report.to_json(), "rerank_top1": float((pred == gold).mean()),
               "rerank_top1_where_retrieved": float((pred == gold)[in_top].mean()),
               "rerank_x_head_top1": float((with_head == gold).mean()),
               "rerank_sibling_error_share": sibling_share(pred, gold, parents),
               "rerank_pairs_per_s": round(len(test) * args.k / rerank_s, 1),
               "rerank_msgs_per_s": round(len(test) / rerank_s, 1)}
        results["runs"].append(run)
        print(json.dumps(run), flush=True)
        out.write_text(json.dumps(results, indent=2) + "\n")  # after every run: a cut-off one keeps the rest


if __name__ == "__main__":
    main()
