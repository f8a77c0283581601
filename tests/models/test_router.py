"""One Router decides and measures: the node, eval and training score through it, with one split policy."""

from __future__ import annotations

import numpy as np

from labelrouter.evaluation.metrics import router_metrics
from labelrouter.evaluation.splits import holdout, time_order
from labelrouter.graph.inference import build_inference_graph
from labelrouter.graph.wiring import build_context
from labelrouter.labels import Label, LabelSet
from labelrouter.models.bundle import LinearHead
from labelrouter.models.label_index import LabelIndex
from labelrouter.models.router import Router, scoring_params
from labelrouter.models.scoring import ScoringParams
from labelrouter.state import EmailMessage
from tests.stub_encoder import StubEncoder

LABELS = LabelSet((Label("invoices", "finance", "invoice payment due amount"),
                   Label("receipts", "finance", "receipt for your order purchase"),
                   Label("travel", None, "flight booking hotel itinerary"),
                   Label("other", None, "")), fallback="other")


def _router(head=None, **params) -> Router:
    encoder = StubEncoder()
    index = LabelIndex.build(LABELS, encoder)
    return Router(LABELS, index, head or Router(LABELS, index).head, ScoringParams(**params), encoder.version)


def test_the_node_decides_exactly_what_the_router_scores(settings):
    encoder = StubEncoder()
    ctx = build_context(settings, labels=LABELS, encoder=encoder)
    message = EmailMessage(id="m1", subject="Your flight booking", body="Hotel and flight itinerary attached.")
    out = build_inference_graph().compile().invoke({"message": message}, context=ctx)
    router = ctx.router
    expected = router.explain(router.score(encoder.encode([router.text_of(message, out["summary"])])), 0)
    assert out["routing"] == expected
    assert out["routing"].label == "travel" and out["routing"].reason == "argmax"


def test_scoring_parameters_come_from_settings_in_one_place(settings):
    params = scoring_params(settings.model_copy(update={"top_k": 7, "fallback_threshold": 0.5}))
    assert (params.top_k, params.threshold) == (7, 0.5)


def test_a_head_brings_its_threshold_and_label_vectors_and_with_head_keeps_the_rest():
    base = _router(threshold=0.35)
    W = np.zeros((4, 384), dtype=np.float32)
    vector = np.zeros(384, dtype=np.float32)
    vector[0] = 1.0
    head = LinearHead(LABELS.names, W, np.zeros(4, dtype=np.float32), "h1", "stub",
                      thresholds={"fallback": 0.6}, label_vectors={"travel": vector})
    trained = base.with_head(head)
    assert trained.scoring.threshold == 0.6 and base.scoring.threshold == 0.35
    assert np.allclose(trained.active_index.vectors[2], vector)
    assert not np.allclose(base.active_index.vectors[2], vector)
    fixed = base.with_head(head, threshold=0.2)
    assert fixed.params.threshold == 0.2 and fixed.model_version.endswith("head:h1")


def test_rule_decisions_and_empty_messages_are_explained_by_the_router():
    router = _router()
    ruled = router.decided("receipts", reason="sender-rule")
    assert (ruled.label, ruled.confidence, ruled.reason, ruled.fallback) == ("receipts", 1.0, "sender-rule", False)
    empty = router.no_content()
    assert (empty.label, empty.reason, empty.fallback) == ("other", "no-content", True)


def test_router_metrics_count_retrieval_misses_among_errors():
    router = _router(top_k=1)
    X = StubEncoder().encode(["invoice payment due", "flight booking hotel", "flight hotel"])
    gold = np.array([0, 2, 1])  # the third is wrong, and its label is not the one retrieved
    m = router_metrics(router.score(X), gold, LABELS, 0.0)
    assert m["top1"] == 2 / 3 and m["recall@k"] == 2 / 3 and m["outside_topk_error_share"] == 1.0
    assert m["n"] == 3 and m["fallback_rate"] == 0.0


def test_split_policy_holds_out_the_newest_and_shuffles_undated_rows():
    dates = ["2024-03", "2024-01", "2024-02", "2024-04", "2024-05"]
    train, val = holdout(range(5), dates, 0.4)
    assert [dates[i] for i in val] == ["2024-04", "2024-05"] and len(train) == 3
    # Undated rows grouped by label (as data files are): the held-out part is not one block of labels.
    labels = [i // 50 for i in range(500)]
    _, held = holdout(range(500), [None] * 500, 0.2)
    assert len({labels[i] for i in held}) == 10
    assert time_order(range(500), [None] * 500) == time_order(range(500), [None] * 500)  # seeded
