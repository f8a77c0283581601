"""`labelrouter eval`: the real router and training code on a labeled set, with baselines, in one run.

Protocols: `cold` (taxonomy only), `fewshot` (k examples per label, ≥ 5 random draws per k), `full` (all
of train). Configurations: router only (description vectors, no head); the head (vector + lexical
features, `training.head.train_hybrid_head`) alone and as router × head (what labelrouter decides:
refreshed label vectors, temperature calibrated and fallback policy fitted on validation); the earlier
dense-only head (logistic regression on the vector) alone and as router × head; and a validation-tuned
log-linear blend. Baselines: word 1–2-gram TF-IDF + linear SVM, and frozen-embedding LR (= the dense-only
head alone). Splits: the set's own train/val/test; a set without splits is ordered by date (or file
order), first half train, second half test; without a val split, validation is the newest 20 % of train
(a seeded random 20 % when rows are undated: data files are often grouped by label).
"""

from __future__ import annotations

import hashlib
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from labelrouter.errors import ConfigError
from labelrouter.evaluation import baselines
from labelrouter.evaluation.metrics import decision_metrics, fallback_policy, router_metrics
from labelrouter.evaluation.splits import holdout
from labelrouter.labels import Label, LabelSet
from labelrouter.models.analysis import AnalysisCache, uncached
from labelrouter.models.encoder import Encoder
from labelrouter.models.head import ColdStartHead, Head
from labelrouter.models.label_index import LabelIndex
from labelrouter.models.router import Router
from labelrouter.models.scoring import ScoringParams
from labelrouter.settings import MIN_COVERAGE
from labelrouter.training.head import fit_head, refresh_label_vectors, train_linear_head
from labelrouter.training.importer import LabeledSet, row_text, row_text_and_document

TARGET_PRECISION = 0.90
VAL_FRACTION = 0.2


def _splits(rows: list[dict[str, Any]]) -> tuple[list[int], list[int], list[int]]:
    """The set's own train/val/test; otherwise the split policy (`labelrouter.evaluation.splits`): newest half tests,
    and validation is the newest 20 % of train."""
    has = {r.get("split") for r in rows}
    dates = [r.get("date") for r in rows]
    if "train" in has and "test" in has:
        train = [i for i, r in enumerate(rows) if r.get("split") == "train"]
        test = [i for i, r in enumerate(rows) if r.get("split") == "test"]
        val = [i for i, r in enumerate(rows) if r.get("split") == "val"]
    else:
        train, test = holdout(range(len(rows)), dates, 0.5)
        val = []
    if not val:
        train, val = holdout(train, dates, VAL_FRACTION)
    return train, val, test


def embedding_cache_path(encoder: Encoder, texts: list[str], cache_dir: Path) -> Path:
    """Where `cached_embeddings` keeps the vectors of these texts by this encoder."""
    digest = hashlib.sha256(encoder.version.encode())
    for text in texts:
        digest.update(hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest())
    return cache_dir / f"{digest.hexdigest()[:24]}.npy"


def cached_embeddings(encoder: Encoder, texts: list[str], cache_dir: Path | None) -> np.ndarray:
    """The encoder's vectors of `texts`, read from `cache_dir` when an earlier run of the same encoder on
    the same texts left them there (`.npy`, loaded without pickles): a 20newsgroups pass is ~15 minutes on
    two cores, and eval runs are repeated while a method is compared."""
    if cache_dir is None:
        return encoder.encode(texts)
    path = embedding_cache_path(encoder, texts, cache_dir)
    try:
        X = np.load(path, allow_pickle=False)
        if X.shape == (len(texts), encoder.dim):
            return X.astype(np.float32)
    except (OSError, ValueError):
        pass  # missing or unreadable: embed again and rewrite it
    X = encoder.encode(texts)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, X, allow_pickle=False)
    tmp.replace(path)
    return X


def _ranked(scores: np.ndarray) -> np.ndarray:
    return np.argsort(-scores, axis=1, kind="stable")


class Evaluator:
    def __init__(self, data: LabeledSet, encoder: Encoder, params: ScoringParams, *, seeds: int = 5,
                 target_precision: float = TARGET_PRECISION, progress: Callable[[str], None] | None = None,
                 cache_dir: Path | None = None, min_coverage: float = MIN_COVERAGE, fallback_on: str = "auto"):
        self.data, self.encoder, self.params, self.seeds = data, encoder, params, seeds
        self.target_precision, self.min_coverage, self.fallback_on = target_precision, min_coverage, fallback_on
        self.progress = progress or (lambda _msg: None)
        self.labels = data.taxonomy
        if data.oos_label:  # out-of-scope rows must end in the fallback: give the label set one
            self.labels = LabelSet((*data.taxonomy.labels, Label(data.oos_label, None, "out of scope")),
                                   data.taxonomy.nodes, data.oos_label)
        self.train, self.val, self.test = _splits(data.rows)
        self.pulls: dict[str, list[float]] = {}  # the head's fitted pull per few-shot draw
        self.scales: dict[int, list[float]] = {}  # the dense scale chosen per fit, by training-set size
        self.progress(f"embedding {len(data.rows)} messages")
        start = time.perf_counter()
        texts, docs = zip(*(row_text_and_document(r) for r in data.rows), strict=True) if data.rows else ((), ())
        self.docs = list(docs)
        self.cache_hit = cache_dir is not None and embedding_cache_path(encoder, list(texts), cache_dir).exists()
        self.X = cached_embeddings(encoder, list(texts), cache_dir)
        self.embed_s = time.perf_counter() - start  # text and document building included: a batch's cost
        self.gold = np.array([self.labels.index(r["label"]) for r in data.rows])
        self.analysis = AnalysisCache(max_documents=len(data.rows))
        self.index = LabelIndex.build(self.labels, encoder)
        self.router = Router(self.labels, self.index, ColdStartHead(), params, encoder.version)

    # -- scoring -------------------------------------------------------------------------------
    def _in_scope(self, idx: list[int]) -> list[int]:
        return [i for i in idx if self.data.rows[i]["label"] != self.data.oos_label]

    def _docs(self, idx: list[int]) -> list[str]:
        return [self.docs[i] for i in idx]

    def _fit(self, idx: list[int]) -> Router:
        """The Router with the head trained on `idx` as training does: vector + lexical features, label
        vectors refreshed, the temperature and the head's pull fitted on validation."""
        head = fit_head(self.router, self.X[idx], self._docs(idx), [self.data.rows[i]["label"] for i in idx],
                        self.X[self.val], self._docs(self.val), [self.data.rows[i]["label"] for i in self.val],
                        embedder=self.encoder.version, version="eval")
        self.scales.setdefault(len(idx), []).append(head.metrics["dense_scale"])
        return self.router.with_head(head)

    def _fit_dense(self, idx: list[int]) -> Router:
        """The earlier head: logistic regression on the vector only, no shrinkage (for comparison)."""
        X, y = self.X[idx], [self.data.rows[i]["label"] for i in idx]
        head = train_linear_head(X, y, embedder=self.encoder.version, version="eval-dense", label_order=self.labels.names)
        head.label_vectors = refresh_label_vectors(self.index, X, y)
        return self.router.with_head(head)

    def _head_alone(self, head: Any, docs: list[str]) -> np.ndarray:
        """The head's own probabilities on the test split (its pull only matters against a router)."""
        pull = getattr(head, "pull", 1.0)
        try:
            head.pull = 1.0
            return head.weights(self.X[self.test], self.labels.names, docs)
        finally:
            head.pull = pull

    def _policy(self, s_val: Any, *, trained: bool = True) -> dict[str, Any]:
        """The fallback policy fitted on a router's validation scores; as in training, a trained head's may
        choose the margin (the cold start has only its confidence setting)."""
        return fallback_policy(s_val.confidence, s_val.top == self.gold[self.val], self.target_precision,
                               self.min_coverage, margin=s_val.margin, on=self.fallback_on if trained else "confidence")

    def _configs(self, trained: Router | None, dense: Router | None = None) -> dict[str, dict[str, Any]]:
        """Every configuration on the test split, thresholds (the fallback policy) and blend weight fitted
        on validation."""
        test = self._in_scope(self.test)
        in_train = self._in_scope(self.train)
        train_dist = np.bincount(self.gold[in_train], minlength=len(self.labels)) / max(1, len(in_train))
        mask = np.isin(self.test, test)
        docs, val_docs = self._docs(self.test), self._docs(self.val)
        results: dict[str, dict[str, Any]] = {}
        cold = self.router.score(self.X[self.test], docs)
        policy = self._policy(self.router.score(self.X[self.val], val_docs), trained=False)
        results["router_only"] = router_metrics(cold.rows(mask), self.gold[test], self.labels, policy["threshold"],
                                                train_dist=train_dist)
        results["router_only"]["fallback_policy"] = policy
        self._oos(results["router_only"], cold, policy)
        for prefix, router in (("", trained), ("dense_", dense)):
            if router is None:
                continue
            hx = self._head_alone(router.head, docs)
            results[f"{prefix}head_only"] = decision_metrics(hx[mask].argmax(1), _ranked(hx[mask]), self.gold[test],
                                                             self.labels, train_dist=train_dist)
            s, s_val = router.score(self.X[self.test], docs), router.score(self.X[self.val], val_docs)
            policy = self._policy(s_val)
            name = f"{prefix}router_x_head"
            results[name] = router_metrics(s.rows(mask), self.gold[test], self.labels, policy["threshold"],
                                           fallback_on=policy["fallback_on"], train_dist=train_dist)
            results[name]["fallback_policy"] = policy
            results[name]["final_differs_from_head_share"] = float(np.mean(s.top[mask] != hx[mask].argmax(1)))
            self._oos(results[name], s, policy)
            if router is trained:
                results["blend"] = self._blend(s, s_val, router.head, mask, test, train_dist)
        return results

    def _oos(self, metrics: dict[str, Any], s, policy: dict[str, Any]) -> None:
        if not self.data.oos_label:
            return
        oos = np.array([self.data.rows[i]["label"] == self.data.oos_label for i in self.test])
        if oos.any():
            certainty, threshold = s.certainty(policy["fallback_on"]), policy["threshold"]
            metrics["oos_recall"] = float(np.mean(certainty[oos] < threshold))
            in_scope_ok = (s.top[~oos] == self.gold[np.array(self.test)[~oos]]) & (certainty[~oos] >= threshold)
            metrics["in_scope_accuracy_with_fallback"] = float(in_scope_ok.mean())

    def _blend(self, s, s_val, head: Head, mask, test, train_dist) -> dict[str, Any]:
        """score = α·log(router) + (1 − α)·log(head), α tuned on validation top-1 (`s`, `s_val`: the
        router × head scores of test and validation, whose head weights are the head's)."""
        def blended(sc, alpha):
            return alpha * np.log(sc.router + 1e-6) + (1 - alpha) * np.log(sc.head + 1e-9)

        alphas = np.linspace(0, 1, 11)
        val_top1 = [np.mean(blended(s_val, a).argmax(1) == self.gold[self.val]) for a in alphas]
        alpha = float(alphas[int(np.argmax(val_top1))])
        b = blended(s, alpha)[mask]
        out = decision_metrics(b.argmax(1), _ranked(b), self.gold[test], self.labels, train_dist=train_dist)
        out["alpha"] = alpha
        return out

    def _speed(self, router: Router, n: int = 50) -> dict[str, float]:
        """Batch throughput (embedding + document + scoring with `router`'s head) and the latency of one
        message at a time."""
        start = time.perf_counter()
        with uncached():  # what inference pays: every document analysed
            router.score(self.X, self.docs)
        batch_s = self.embed_s + time.perf_counter() - start
        latencies = []
        for i in self.test[:n]:
            start = time.perf_counter()
            text, document = row_text_and_document(self.data.rows[i])
            x = self.encoder.encode([text])
            with uncached():
                router.score(x, [document])
            latencies.append((time.perf_counter() - start) * 1000)
        p50, p95 = np.percentile(latencies, [50, 95]) if latencies else (float("nan"), float("nan"))
        throughput = None if self.cache_hit else round(len(self.data.rows) / batch_s, 1)  # cached vectors are free
        return {"throughput_msgs_per_s": throughput,
                "latency_ms_p50": round(float(p50), 1), "latency_ms_p95": round(float(p95), 1)}

    # -- baselines -----------------------------------------------------------------------------
    def tfidf_svm(self, train_idx: list[int]) -> dict[str, Any]:
        text = lambda idx: [row_text(self.data.rows[i], 5_000) for i in idx]  # noqa: E731
        model = baselines.tfidf_svm(text(train_idx), self.gold[train_idx])
        test = self._in_scope(self.test)
        decision = model.decision_function(text(test))
        full = np.full((len(test), len(self.labels)), -np.inf)
        full[:, model.classes_] = decision if decision.ndim == 2 else np.c_[-decision, decision]
        return decision_metrics(full.argmax(1), _ranked(full), self.gold[test], self.labels)

    # -- protocols -----------------------------------------------------------------------------
    def run(self, protocol: str, ks: list[int]) -> dict[str, Any]:
        with self.analysis.active():  # every fit and score reads the same documents: analyse each once
            return self._run(protocol, ks)

    def _run(self, protocol: str, ks: list[int]) -> dict[str, Any]:
        train = self._in_scope(self.train)
        report: dict[str, Any] = {"dataset": self.data.name, "protocol": protocol, "n_train": len(train),
                                  "n_val": len(self.val), "n_test": len(self.test), "encoder": self.encoder.version,
                                  "target_precision": self.target_precision, "min_coverage": self.min_coverage}
        if protocol == "cold":
            report.update(self._speed(self.router))
            report["configs"] = self._configs(None)
        elif protocol == "full":
            self.progress("training the head on all of train")
            start = time.perf_counter()
            trained = self._fit(train)
            report["head_train_s"] = round(time.perf_counter() - start, 2)
            start = time.perf_counter()
            dense = self._fit_dense(train)
            report["dense_head_train_s"] = round(time.perf_counter() - start, 2)
            report["temperature"] = trained.head.temperature  # type: ignore[attr-defined]
            report["pull"] = trained.head.pull  # type: ignore[attr-defined]
            report["dense_scale"] = self.scales[len(train)][-1]
            report.update(self._speed(trained))
            report["speed_router_only"] = self._speed(self.router)
            report["configs"] = self._configs(trained, dense)
            self.progress("baselines")
            report["baselines"] = {"tfidf_svm": self.tfidf_svm(train),
                                   "frozen_lr": report["configs"]["dense_head_only"]}
        elif protocol == "fewshot":
            report.update(self._speed(self.router))
            report["fewshot"] = self._fewshot(train, ks)
            report["pull_by_k"] = self.pulls
            report["dense_scale_by_train_size"] = {str(n): v for n, v in self.scales.items()}
        else:
            raise ConfigError(f"unknown protocol {protocol!r}: use cold, fewshot or full")
        return report

    def _fewshot(self, train: list[int], ks: list[int]) -> dict[str, Any]:
        by_label: dict[int, list[int]] = {}
        for i in train:
            by_label.setdefault(int(self.gold[i]), []).append(i)
        out: dict[str, Any] = {}
        for k in ks:
            names = ("router_x_head", "head_only", "router_only", "dense_router_x_head", "dense_head_only")
            runs: dict[str, list[float]] = {name: [] for name in (*names, "tfidf_svm")}
            pulls: list[float] = []
            for seed in range(self.seeds):
                self.progress(f"few-shot k={k}, draw {seed + 1}/{self.seeds}")
                rng = np.random.default_rng(seed)
                sample = [i for rows in by_label.values() for i in rng.choice(rows, min(k, len(rows)), replace=False)]
                trained = self._fit(sample)
                pulls.append(trained.head.pull)  # type: ignore[attr-defined]
                configs = self._configs(trained, self._fit_dense(sample))
                for name in names:
                    runs[name].append(configs[name]["top1"])
                runs["tfidf_svm"].append(self.tfidf_svm(sample)["top1"])
            out[str(k)] = {name: {"top1_mean": statistics.mean(v), "top1_sd": statistics.pstdev(v), "runs": len(v)}
                           for name, v in runs.items()}
            self.pulls[str(k)] = pulls
        return out


def write_outputs(report: dict[str, Any], out_dir: Path) -> list[Path]:
    """metrics.json, report.md and PNG plots (few-shot learning curve, risk–coverage, errors by parent)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    written = [out_dir / "metrics.json", out_dir / "report.md"]
    written[0].write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    lines = [f"# {report['dataset']} — {report['protocol']}", "",
             f"train {report['n_train']}, validation {report['n_val']}, test {report['n_test']}; encoder {report['encoder']}", ""]
    rows = {**report.get("configs", {}), **{f"baseline: {k}": v for k, v in report.get("baselines", {}).items()}}
    if rows:
        keys = ["top1", "recall@5", "recall@20", "macro_f1", "sibling_error_share", "fallback_rate",
                "non_fallback_precision", "accuracy_with_fallback", "fallback_on", "oos_recall"]
        lines += ["| config | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
        for name, m in rows.items():
            cells = [f"{m[k]:.4f}" if isinstance(m.get(k), float) else str(m.get(k) or "—") for k in keys]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if "fewshot" in report:
        names = list(next(iter(report["fewshot"].values())))
        lines += ["", "| k | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
        for k, res in report["fewshot"].items():
            lines.append(f"| {k} | " + " | ".join(f"{res[n]['top1_mean']:.3f} ± {res[n]['top1_sd']:.3f}" for n in names) + " |")
        fig, ax = plt.subplots(figsize=(6, 4))
        ks = [int(k) for k in report["fewshot"]]
        for name in names:
            means = [report["fewshot"][str(k)][name]["top1_mean"] for k in ks]
            sds = [report["fewshot"][str(k)][name]["top1_sd"] for k in ks]
            ax.errorbar(ks, means, yerr=sds, marker="o", capsize=3, label=name)
        ax.set(xscale="log", xlabel="examples per label (k)", ylabel="top-1", title=f"{report['dataset']}: few-shot")
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.legend()
        fig.savefig(out_dir / "fewshot.png", dpi=110, bbox_inches="tight")
        plt.close(fig)
        written.append(out_dir / "fewshot.png")
    configs = report.get("configs", {})
    curves = {name: m["risk_coverage"] for name, m in configs.items() if m.get("risk_coverage")}
    if curves:
        fig, ax = plt.subplots(figsize=(6, 4))
        for name, curve in curves.items():
            ax.plot([c for c, _ in curve], [r for _, r in curve], marker=".", label=name)
        ax.set(xlabel="coverage (share not sent to the fallback)", ylabel="risk (error rate)",
               title=f"{report['dataset']}: risk–coverage")
        ax.legend()
        fig.savefig(out_dir / "risk_coverage.png", dpi=110, bbox_inches="tight")
        plt.close(fig)
        written.append(out_dir / "risk_coverage.png")
    best = configs.get("router_x_head") or configs.get("router_only")
    if best and best.get("errors_by_parent"):
        items = list(best["errors_by_parent"].items())[:20]
        fig, ax = plt.subplots(figsize=(6, 0.3 * len(items) + 1.2))
        ax.barh([k for k, _ in items][::-1], [v for _, v in items][::-1], color="#7a6ff0")
        ax.set(xlabel="errors", title=f"{report['dataset']}: errors by true label's parent")
        fig.savefig(out_dir / "errors_by_parent.png", dpi=110, bbox_inches="tight")
        plt.close(fig)
        written.append(out_dir / "errors_by_parent.png")
    (out_dir / "report.md").write_text("\n".join(lines) + "\n")
    return written
