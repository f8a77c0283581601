"""The bi-encoder stage on a handful of rows with the real packaged model: it trains within its budget,
saves a model the encoder loads under a version of its own, and moves retrieval toward the labels."""

import numpy as np

from labelrouter.labels import parse_label_set
from labelrouter.models.encoder import Encoder, packaged_encoder_path
from labelrouter.models.label_index import LabelIndex
from labelrouter.training.bi_encoder import train_bi_encoder
from labelrouter.training.budget import Budget
from labelrouter.training.retrieval_data import retrieval_rows

LABELS = parse_label_set({
    "nodes": [{"name": "work"}],
    "labels": [{"name": "invoices", "parent": "work", "description": "bills to pay"},
               {"name": "contracts", "parent": "work", "description": "agreements"},
               {"name": "family", "description": "relatives"}],
}, require_fallback=False)
MESSAGES = {  # what the descriptions do not say: the user files "zorblax" codes as contracts
    "contracts": ["zorblax form 7 attached", "zorblax renewal for next year", "signed zorblax pages",
                  "zorblax terms, final draft"],
    "invoices": ["amount due by friday", "payment reminder: 120 EUR", "your bill for march", "overdue balance"],
    "family": ["grandma's birthday on sunday", "photos from the beach with the kids", "dinner at mum's",
               "cousin's wedding plans"],
}


def test_a_budgeted_run_saves_an_encoder_that_retrieves_what_the_user_taught(encoder, tmp_path):
    rows = [{"example_id": f"e{i}-{n}", "label": label, "kind": "correction", "rejected_label": None,
             "embedded_text": text} for i, (label, texts) in enumerate(MESSAGES.items()) for n, text in enumerate(texts)]
    texts = [r["embedded_text"] for r in rows]
    X = encoder.encode(texts)
    index = LabelIndex.build(LABELS, encoder)
    data = retrieval_rows(rows, X, LABELS, index, negatives=2)
    steps = []
    report = train_bi_encoder(packaged_encoder_path(), data, LABELS.tree_distances(), tmp_path / "bi",
                              budget=Budget(steps=12, examples=100, minutes=5), batch_size=6, learning_rate=1e-4,
                              epochs=10, progress=steps.append)
    assert report.steps == 12 and report.stopped_by == "steps" and report.examples == 12
    assert steps and "12 steps" in steps[-1]
    tuned = Encoder(tmp_path / "bi")
    assert tuned.version != encoder.version and tuned.dim == encoder.dim
    zorblax = [i for i, r in enumerate(rows) if r["label"] == "contracts"]
    right = LABELS.index("contracts")

    def margin(enc):  # how far "contracts" is ahead of the best other label, for the zorblax mail
        sims = enc.encode([texts[i] for i in zorblax]) @ LabelIndex.build(LABELS, enc).vectors.T
        return float(np.mean(sims[:, right] - np.delete(sims, right, axis=1).max(axis=1)))

    assert margin(tuned) > margin(encoder) + 0.05


def test_the_minute_budget_stops_a_run(encoder, tmp_path):
    rows = [{"example_id": f"e{n}", "label": label, "kind": "gold", "rejected_label": None, "embedded_text": text}
            for label, texts in MESSAGES.items() for n, text in enumerate(texts)]
    data = retrieval_rows(rows, encoder.encode([r["embedded_text"] for r in rows]), LABELS,
                          LabelIndex.build(LABELS, encoder), negatives=1)
    report = train_bi_encoder(packaged_encoder_path(), data, LABELS.tree_distances(), tmp_path / "bi",
                              budget=Budget(steps=1000, examples=100, minutes=0.0), batch_size=4, epochs=100)
    assert report.stopped_by == "minutes" and report.steps == 1
    assert (tmp_path / "bi" / "model.safetensors").exists()


def test_a_teacher_s_scores_pull_the_bi_encoder_toward_the_negatives_it_calls_nearly_right(encoder, tmp_path):
    rows = [{"example_id": f"e{i}-{n}", "label": label, "kind": "correction", "rejected_label": None,
             "embedded_text": text} for i, (label, texts) in enumerate(MESSAGES.items()) for n, text in enumerate(texts)]
    texts = [r["embedded_text"] for r in rows]
    data = retrieval_rows(rows, encoder.encode(texts), LABELS, LabelIndex.build(LABELS, encoder), negatives=2)
    first_negative = [ids[1] for ids in data.columns["label"]]

    def trained(first_negative_score, name):  # the teacher: the label 4, the first negative this, the other -4
        teacher = np.array([[4.0, first_negative_score, -4.0]] * len(data))
        report = train_bi_encoder(packaged_encoder_path(), data, LABELS.tree_distances(), tmp_path / name,
                                  budget=Budget(steps=8, examples=100, minutes=5), batch_size=6, learning_rate=1e-4,
                                  epochs=10, teacher=teacher, distill_weight=4.0)
        assert report.steps == 8 and report.metrics["distill_weight"] == 4.0
        tuned = Encoder(tmp_path / name)
        sims = tuned.encode(texts) @ LabelIndex.build(LABELS, tuned).vectors.T
        return float(np.mean([sims[i, first_negative[i]] for i in range(len(texts))]))

    assert trained(3.5, "nearly-right") > trained(-4.0, "far") + 0.1  # measured: 0.24 vs -0.11


def test_teacher_scores_must_cover_every_row_and_candidate(encoder, tmp_path):
    import pytest

    from labelrouter.errors import LabelRouterError

    rows = [{"example_id": f"e{n}", "label": label, "kind": "gold", "rejected_label": None, "embedded_text": text}
            for label, texts in MESSAGES.items() for n, text in enumerate(texts)]
    data = retrieval_rows(rows, encoder.encode([r["embedded_text"] for r in rows]), LABELS,
                          LabelIndex.build(LABELS, encoder), negatives=2)
    with pytest.raises(LabelRouterError, match="do not cover"):
        train_bi_encoder(packaged_encoder_path(), data, LABELS.tree_distances(), tmp_path / "bi",
                         teacher=np.zeros((len(data), 2)))
