"""The cross-encoder's training lists and a budgeted run from the packaged MiniLM: the true label, a
correction's rejected label and a sibling are always in the list; targets follow the loss; the trained
model reranks candidate sets."""

import numpy as np
import pytest

from labelrouter.labels import parse_label_set
from labelrouter.models.encoder import packaged_encoder_path
from labelrouter.models.label_index import LabelIndex
from labelrouter.models.reranker import CrossEncoderReranker
from labelrouter.training.budget import Budget
from labelrouter.training.cross_encoder import NEG_LOG, listwise_rows, train_cross_encoder

LABELS = parse_label_set({
    "fallback": "other",
    "nodes": [{"name": "clients"}],
    "labels": [{"name": "acme", "parent": "clients"}, {"name": "globex", "parent": "clients"},
               {"name": "garden"}, {"name": "receipts"}, {"name": "travel"}, {"name": "other"}],
}, require_fallback=False)
ACME, GLOBEX, GARDEN, RECEIPTS, TRAVEL, OTHER = range(6)


def _index():
    return LabelIndex(LABELS, np.eye(6, 8, dtype=np.float32), "enc@1")


def test_lists_always_hold_the_truth_the_rejected_label_and_a_sibling():
    rows = [{"example_id": "e0", "label": "acme", "kind": "correction", "rejected_label": "travel",
             "embedded_text": "the acme contract"}]
    X = np.zeros((1, 8), np.float32)
    X[0, GARDEN], X[0, RECEIPTS] = 1.0, 0.9  # retrieval ranks garden, receipts first: acme and its sibling far
    texts = LABELS.retrieval_texts()
    got = listwise_rows(rows, X, LABELS, _index(), k=3)
    docs = set(got["docs"][0])
    assert docs == {texts[ACME], texts[TRAVEL], texts[GLOBEX]}  # injected: truth, rejected, sibling
    assert texts[OTHER] not in docs  # the fallback is never a candidate
    targets = dict(zip(got["docs"][0], got["labels"][0], strict=True))
    assert targets[texts[ACME]] == 0.0 and targets[texts[TRAVEL]] == NEG_LOG  # ListNet reads log-probabilities
    soft = dict(zip(*[listwise_rows(rows, X, LABELS, _index(), k=3, soft=True)[c][0] for c in ("docs", "labels")],
                    strict=True))
    assert soft[texts[ACME]] > soft[texts[GLOBEX]] > soft[texts[TRAVEL]]  # a sibling is less wrong
    assert np.isclose(np.exp(list(soft.values())).sum(), 1.0)
    graded = listwise_rows(rows, X, LABELS, _index(), k=3, loss="lambda", soft=True)
    assert sorted(graded["labels"][0]) == [0.0, 1.0, 2.0]


def test_an_unknown_loss_is_refused():
    with pytest.raises(Exception, match="listnet, plistmle, lambda"):
        listwise_rows([], np.zeros((0, 8)), LABELS, _index(), loss="softmax")


def test_a_budgeted_cross_encoder_trains_saves_and_reranks(encoder, tmp_path):
    messages = {"acme": ["acme invoice number 4471", "meeting with acme's lawyers"],
                "garden": ["the roses need pruning", "tomato seeds arrived"],
                "travel": ["boarding pass for friday", "hotel booking in lisbon"]}
    rows = [{"example_id": f"{label}{n}", "label": label, "kind": "gold", "rejected_label": None, "embedded_text": text}
            for label, texts in messages.items() for n, text in enumerate(texts)]
    X = encoder.encode([r["embedded_text"] for r in rows])
    index = LabelIndex.build(LABELS, encoder)
    columns = listwise_rows(rows, X, LABELS, index, k=4)
    lines = []
    report = train_cross_encoder(packaged_encoder_path(), columns, tmp_path / "ce", budget=Budget(steps=3, examples=6),
                                 batch_size=2, epochs=10, progress=lines.append)
    assert report.steps == 3 and report.stopped_by == "steps" and report.metrics["loss_fn"] == "listnet"
    assert (tmp_path / "ce" / "model.safetensors").exists() and not list((tmp_path / "ce").glob("*.bin"))
    reranker = CrossEncoderReranker(tmp_path / "ce")
    scores = reranker.rerank(["a hotel in porto", "acme order"], np.array([[TRAVEL, GARDEN], [ACME, RECEIPTS]]), LABELS)
    assert scores.shape == (2, 2) and np.isfinite(scores).all()
    assert reranker.version.startswith("rerank@") and lines
