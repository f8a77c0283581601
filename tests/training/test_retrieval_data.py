"""Retrieval training rows from stored examples: the rejected label and the router's confusions first,
then a sibling; never the message's own label; drawn by kind weight within a budget."""

import numpy as np

from labelrouter.labels import parse_label_set
from labelrouter.models.label_index import LabelIndex
from labelrouter.training.retrieval_data import retrieval_rows

LABELS = parse_label_set({
    "fallback": "other",
    "nodes": [{"name": "clients"}, {"name": "home"}],
    "labels": [{"name": "acme", "parent": "clients"}, {"name": "globex", "parent": "clients"},
               {"name": "initech", "parent": "clients"}, {"name": "garden", "parent": "home"},
               {"name": "receipts"}, {"name": "other"}],
})
ACME, GLOBEX, INITECH, GARDEN, RECEIPTS, OTHER = range(6)


def _index():
    vectors = np.eye(6, 8, dtype=np.float32)
    return LabelIndex(LABELS, vectors, "enc@1")


def _row(n, label, kind="gold", rejected=None):
    return {"example_id": f"e{n}", "label": label, "kind": kind, "rejected_label": rejected,
            "embedded_text": f"message {n} about {label}"}


def _vector(*weights):
    v = np.zeros(8, np.float32)
    v[: len(weights)] = weights
    return v / np.linalg.norm(v)


def test_the_rejected_label_comes_first_then_a_sibling_and_never_the_own_label():
    rows = [_row(0, "acme", "correction", rejected="receipts"), _row(1, "acme"), _row(2, "garden")]
    # Message 0 looks most like garden, then initech, then acme: the router's confusions.
    X = np.vstack([_vector(0.5, 0.0, 0.6, 0.0, 0.0, 0.0) + _vector(0, 0, 0, 0.9), _vector(1.0), _vector(0, 0, 0, 1.0)])
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    got = retrieval_rows(rows, X, LABELS, _index(), negatives=3)
    texts = LABELS.retrieval_texts()
    ids = got.columns["label"]
    assert ids[0][:3] == [ACME, RECEIPTS, INITECH]  # positive, the rejected label, the nearest sibling
    assert got.columns["negative_1"][0] == texts[RECEIPTS] and got.columns["positive"][0] == texts[ACME]
    assert got.columns["message"][0] == "message 0 about acme"
    for row in ids:
        assert row[0] not in row[1:] and len(set(row)) == len(row) == 4
        assert OTHER not in row  # the fallback is never retrieved, so never a negative
    assert got.negative_sources["rejected"] == 1 and got.negative_sources["sibling"] >= 2
    # Garden has no sibling: its first two negatives are the router's two best confusions (all tie at 0:
    # in label order).
    assert ids[2][1:3] == [ACME, GLOBEX]


def test_examples_are_drawn_by_kind_weight_within_the_budget_reproducibly():
    rows = [_row(n, "acme" if n % 2 else "garden", "correction" if n < 20 else "silver") for n in range(200)]
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 8)).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    weights = {"correction": 3.0, "silver": 0.5}
    got = retrieval_rows(rows, X, LABELS, _index(), at_most=40, kind_weights=weights)
    again = retrieval_rows(rows, X, LABELS, _index(), at_most=40, kind_weights=weights)
    assert len(got) == 40 and got.example_ids == again.example_ids
    corrections = sum(int(e[1:]) < 20 for e in got.example_ids)
    assert corrections >= 10  # 20 of 200 rows, but 3 / 0.5 = 6 times as likely: ~16 expected, 4 if uniform
    assert set(got.columns) == {"message", "positive", "negative_1", "negative_2", "label"}


def test_fallback_and_empty_examples_are_left_out():
    rows = [_row(0, "other"), {**_row(1, "acme"), "embedded_text": " "}, _row(2, "unknown-label")]
    X = np.eye(3, 8, dtype=np.float32)
    got = retrieval_rows(rows, X, LABELS, _index())
    assert len(got) == 0 and got.columns["message"] == []


def test_a_sample_of_rows_spans_a_label_grouped_order_and_keeps_rows_whole():
    """The rows a budget reaches (distillation scores only those): drawn across the whole set, not its head
    — stored order is oldest first, and a data file may be grouped by label."""
    names = ["acme", "globex", "initech", "garden", "receipts"]
    rows = [_row(n, names[n // 40]) for n in range(200)]  # 40 of each label, one label after another
    X = np.vstack([_vector(*([0.0] * (n // 40) + [1.0])) for n in range(200)])
    data = retrieval_rows(rows, X, LABELS, _index())
    part = data.sample(50)
    assert len(part) == 50 and part.example_ids == data.sample(50).example_ids  # seeded
    assert {rows[int(e[1:])]["label"] for e in part.example_ids} == set(names)  # the first 50 hold two labels
    order = [int(e[1:]) for e in part.example_ids]
    assert order == sorted(order)
    for k, example in enumerate(part.example_ids):  # every column of a row moved together
        i = data.example_ids.index(example)
        assert all(part.columns[c][k] == data.columns[c][i] for c in data.columns)
    assert data.sample(500) is data
