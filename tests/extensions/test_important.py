"""The important head: trained by the training graph from the IMPORTANT flags syncs record, shipped in the
same bundle, promoted by the same gate, and read by the `important` extension node after the router."""

from __future__ import annotations

import numpy as np

from labelrouter.extensions.important import extension as important_extension
from labelrouter.graph.inference import build_inference_graph
from labelrouter.graph.wiring import build_context
from labelrouter.labels import load_label_set
from labelrouter.models.bundle import LinearHead
from labelrouter.state import ApplyResult, EmailMessage, LabelingState, Routing
from labelrouter.store import open_store
from labelrouter.training import build_training_context, run_training
from tests.conftest import LABELS_JSON, registry_at
from tests.helpers import separable_examples

URGENT = "urgent outage production down escalation"


def _decisions_with_flags(store, encoder, n: int = 80) -> None:
    """Decisions whose message vectors say whether they are important (the stub encoder hashes words)."""
    rng = np.random.default_rng(3)
    for i in range(n):
        important = i % 3 == 0
        text = f"{URGENT} case {i}" if important else f"weekly newsletter digest {rng.integers(10**6)}"
        vector = encoder.encode([text])[0]
        routing = Routing(label="other", top_label="other", router_weights={}, head_weights={}, final_scores={},
                          candidates=[], confidence=0.5, margin=10.0, threshold=0.35, fallback=False,
                          reason="argmax", model_version="m", encoder_version=encoder.version, labels_hash="h")
        applied = ApplyResult(status="applied", label="other", archive=False, label_ids_before=["INBOX"],
                              label_ids_after=["INBOX", "other"])
        state = LabelingState(message=EmailMessage(id=f"d{i}", subject="s", body=text), routing=routing,
                              applied=applied, embedding=[float(x) for x in vector])
        assert store.record_intent(state, "other") and store.complete(f"d{i}", applied)
    store.record_sync([{"message_id": f"d{i}", "label_ids_current": ["INBOX", "other"], "synced_at": "2026-01-01",
                        "present": True, "seen": True, "in_inbox": True, "important": i % 3 == 0}
                       for i in range(n)])


def test_training_fits_the_important_head_and_the_node_reports_it(settings, stub_encoder):
    store = open_store(settings)
    names = load_label_set(LABELS_JSON).names[:4]
    store.add_examples(separable_examples(stub_encoder, names, 15))
    _decisions_with_flags(store, stub_encoder)
    state = run_training(build_training_context(settings, store))
    assert state.promoted, state.decision
    assert state.important_val_ids and state.metrics["candidate"]["important_balanced_accuracy"] >= 0.9
    assert state.metrics["current"]["important_balanced_accuracy"] is None  # the cold start has none

    ctx = build_context(settings)
    graph = build_inference_graph(extensions=[important_extension]).compile()
    urgent = graph.invoke({"message": EmailMessage(id="u", subject="Urgent", body=f"{URGENT} right now")}, context=ctx)
    calm = graph.invoke({"message": EmailMessage(id="c", subject="Digest", body="weekly newsletter digest")},
                        context=ctx)
    assert urgent["extensions"]["important"]["important"] and not calm["extensions"]["important"]["important"]
    assert 0.0 <= calm["extensions"]["important"]["probability"] < 0.5


def test_without_an_important_head_the_node_writes_nothing_and_the_artifact_round_trips(settings, stub_encoder, tmp_path):
    ctx = build_context(settings)
    graph = build_inference_graph(extensions=[important_extension]).compile()
    out = graph.invoke({"message": EmailMessage(id="x", subject="Hello", body="hello there")}, context=ctx)
    assert "important" not in out["extensions"]
    head = LinearHead(labels=["a", "b"], W=np.zeros((2, 4), np.float32), b=np.zeros(2, np.float32), version="v1",
                      embedder="enc@1", important_w=np.array([1, 0, 0, 0], np.float32), important_b=-0.5)
    registry = registry_at(tmp_path)
    registry.stage(head)
    registry.promote("v1", embedder="enc@1", dim=4)
    loaded = registry.current_head(embedder="enc@1", dim=4)
    np.testing.assert_allclose(loaded.important_probability(np.eye(4, dtype=np.float32)),
                               head.important_probability(np.eye(4, dtype=np.float32)))
