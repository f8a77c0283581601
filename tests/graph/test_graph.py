"""The inference graph on the real encoder: the score contract, top-K, fallback, a trained head."""

from pathlib import Path

import numpy as np
import pytest

from labelrouter.graph.draw import draw
from labelrouter.graph.inference import build_inference_graph
from labelrouter.graph.labeler import CHUNKS_IN_FLIGHT, Labeler
from labelrouter.graph.mailbox_run import MailboxRun
from labelrouter.graph.wiring import build_context
from labelrouter.mail.parse import parse_message
from labelrouter.models.bundle import LinearHead
from labelrouter.settings import load_settings
from labelrouter.state import EmailMessage
from tests.conftest import LABELS_JSON, registry_at
from tests.helpers import eml

ORDER = parse_message(eml("Your order #A-77 has shipped", "Your package is on its way. Tracking number 1Z84X."))


def assert_contract(routing, labels, top_k):
    names = labels.names
    assert list(routing.router_weights) == names  # one entry per label, in label order
    for name in names:
        r, h, f = routing.router_weights[name], routing.head_weights[name], routing.final_scores[name]
        assert 0 <= r <= 100 and 0 <= h <= 1
        assert f == pytest.approx(r * h, abs=1e-6)
    retrieved = {c.label for c in routing.candidates}
    assert len(retrieved) == min(top_k, len(labels.routable))
    assert all(routing.router_weights[n] == 0 for n in names if n not in retrieved)
    best = max(routing.final_scores, key=routing.final_scores.get)
    assert routing.top_label == best
    assert routing.confidence == pytest.approx(routing.final_scores[best] / 100, abs=1e-5)
    if routing.confidence < routing.threshold:
        assert routing.fallback and routing.label == labels.fallback
    else:
        assert not routing.fallback and routing.label == best


def test_invoke_keeps_the_whole_explanation(ctx):
    out = build_inference_graph().compile().invoke({"message": ORDER}, context=ctx)
    routing = out["routing"]
    assert_contract(routing, ctx.labels, 20)
    assert routing.label == "🛒-shopping-orders" and routing.reason == "argmax"
    assert routing.model_version == f"{ctx.encoder.version}+head:cold-start"
    assert routing.labels_hash == ctx.labels.fingerprint()
    assert out["summary"].source == "offline" and out["applied"].status == "skipped"
    assert "embedding" not in out  # the output schema narrows what comes out
    assert all(h == 1.0 for h in routing.head_weights.values())  # cold start


def test_more_labels_than_k(settings, encoder):
    ctx = build_context(settings.model_copy(update={"top_k": 5}))
    routing = Labeler(ctx, settings).label(ORDER)["routing"]
    assert_contract(routing, ctx.labels, 5)
    assert sum(1 for w in routing.router_weights.values() if w > 0) == 5


def test_threshold_decides_fallback(settings, encoder):
    strict = Labeler(build_context(settings.model_copy(update={"fallback_threshold": 0.99})), settings)
    routing = strict.label(ORDER)["routing"]
    assert routing.fallback and routing.label == "other" and routing.reason == "below-threshold"
    assert routing.top_label == "🛒-shopping-orders"
    lenient = Labeler(build_context(settings.model_copy(update={"fallback_threshold": 0.0})), settings)
    assert not lenient.label(ORDER)["routing"].fallback


def test_vague_message_falls_back_at_the_default_threshold(ctx, settings):
    vague = parse_message(eml("Re: your ref. 0091", "Kindly revert with the requested particulars."))
    routing = Labeler(ctx, settings).label(vague)["routing"]
    assert_contract(routing, ctx.labels, 20)
    assert routing.fallback and routing.label == "other"


def test_message_without_content_gets_the_fallback(ctx, settings):
    routing = Labeler(ctx, settings).label(EmailMessage(id="empty"))["routing"]
    assert routing.label == "other" and routing.reason == "no-content" and routing.candidates == []


def test_a_trained_head_reweights_and_brings_its_threshold(settings, encoder, tmp_path: Path):
    labels_ctx = build_context(settings)
    names = labels_ctx.labels.names
    favoured = names.index("🛒-shopping-promotions")
    b = np.full(len(names), -5.0, np.float32)
    b[favoured] = 5.0
    head = LinearHead(labels=names, W=np.zeros((len(names), encoder.dim), np.float32), b=b, version="h1",
                      embedder=encoder.version, thresholds={"fallback": 0.02})
    registry = registry_at(settings.resolved_models_dir)
    registry.stage(head)
    registry.promote("h1", embedder=encoder.version, dim=encoder.dim)
    ctx = build_context(settings)
    routing = Labeler(ctx, settings).label(ORDER)["routing"]
    assert_contract(routing, ctx.labels, 20)
    assert routing.threshold == 0.02 and routing.model_version.endswith("+head:h1")
    assert routing.label == "🛒-shopping-promotions"  # router alone would say orders
    assert routing.head_weights["🛒-shopping-promotions"] > 0.99


def test_batched_labeling_matches_one_by_one(ctx, settings):
    from labelrouter.demo import sample_messages

    labeler = Labeler(ctx, settings, chunk_size=8)
    messages = [parse_message(raw) for _, raw in sample_messages()[:12]]
    batched = labeler.label_many(messages)
    # Padding a batch changes the arithmetic, not the answer: fp32 agrees to ~1e-6; bf16 (auto-enabled
    # where the CPU has AVX512-BF16 or AMX) carries ~3 significant digits, so confidences move by ~1e-3.
    tolerance = 1e-2 if ctx.encoder.use_bf16 else 1e-3
    for message, result in zip(messages, batched, strict=True):
        single = labeler.label(message)["routing"]
        if result["routing"].label != single.label:  # only a near-tie may flip, and only in bf16
            scores = single.final_scores
            assert abs(scores[single.label] - scores[result["routing"].label]) <= tolerance * 100, message.subject
        assert result["routing"].confidence == pytest.approx(single.confidence, abs=tolerance)


def test_label_many_keeps_its_threads_and_encodes_each_chunk_in_one_pass(stub_encoder, settings):
    import threading

    from labelrouter.demo import sample_messages

    messages = [parse_message(raw) for _, raw in sample_messages()[:12]]
    ctx = build_context(settings, mode="decide")
    passes: list[int] = []
    encoding_threads: set[str] = set()
    encode = stub_encoder.encode

    def counted(texts):
        passes.append(len(texts))
        encoding_threads.add(threading.current_thread().name)
        return encode(texts)

    stub_encoder.encode = counted
    labeler = Labeler(ctx, settings, chunk_size=4)
    one_by_one = [labeler.label(m)["routing"].label for m in messages]
    passes.clear()
    encoding_threads.clear()
    first = labeler.label_many(messages)
    threads_after_first = threading.active_count()
    # Two callers at once: each chunk still gets all its invocations together (one pass of 4 each).
    results: dict[str, list] = {}
    callers = [threading.Thread(target=lambda k=k: results.__setitem__(k, labeler.label_many(messages)))
               for k in ("a", "b")]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join(timeout=30)
    assert passes == [4] * 9  # 3 chunks, then 3 for each concurrent caller: never split, never merged
    assert len(encoding_threads) <= 4 * CHUNKS_IN_FLIGHT  # one pool for the labeler's life
    for got in (first, results["a"], results["b"]):
        assert [r["routing"].label for r in got] == one_by_one
    labeler.close()
    assert threading.active_count() <= threads_after_first - 4 + 2


def test_run_parses_the_next_chunk_while_one_is_in_the_graph(stub_encoder, settings, tmp_path: Path):
    import threading

    from labelrouter.demo import sample_messages
    from labelrouter.mail.maildir import LocalMaildir

    box = LocalMaildir(tmp_path / "Mail")
    ids = [box.deliver(raw) for _, raw in sample_messages()[:8]]
    labeler = Labeler(build_context(settings, mode="dry-run", mailbox=box), settings, chunk_size=4)
    second_chunk_parsed = threading.Event()
    parse = labeler.parse

    def parse_and_tell(raw, *, message_id=None, label_ids=None):
        message = parse(raw, message_id=message_id, label_ids=label_ids)
        if message_id == box.list_inbox()[7]:
            second_chunk_parsed.set()
        return message

    waited: list[bool] = []
    encode = stub_encoder.encode

    def encode_first_chunk_once_the_second_is_parsed(texts):
        if not waited:  # the first chunk's forward pass: the reader must not be waiting on it
            waited.append(second_chunk_parsed.wait(timeout=10))
        return encode(texts)

    labeler.parse = parse_and_tell
    stub_encoder.encode = encode_first_chunk_once_the_second_is_parsed
    with labeler:
        report = MailboxRun(labeler).run_mailbox()
    assert waited == [True]
    assert sorted(o.message_id for o in report.outcomes) == sorted(ids)
    assert [o.status for o in report.outcomes] == ["dry-run"] * 8


def test_run_starts_the_next_chunk_while_the_last_one_is_still_being_applied(stub_encoder, settings, tmp_path):
    import threading

    from labelrouter.demo import sample_messages
    from labelrouter.mail.maildir import LocalMaildir

    box = LocalMaildir(tmp_path / "Mail")
    ids = [box.deliver(raw) for _, raw in sample_messages()[:8]]
    labeler = Labeler(build_context(settings, mode="dry-run", mailbox=box), settings, chunk_size=4)
    second_encoded = threading.Event()
    passes: list[int] = []
    encode = stub_encoder.encode

    def counted(texts):
        passes.append(len(texts))
        if len(passes) == 2:
            second_encoded.set()
        return encode(texts)

    first_chunk = set(box.list_inbox()[:4])
    overlapped: list[bool] = []
    apply_label = box.apply_label

    def apply_once_the_next_chunk_is_encoded(message_id, *args, **kwargs):
        if message_id in first_chunk:
            overlapped.append(second_encoded.wait(timeout=10))
        return apply_label(message_id, *args, **kwargs)

    stub_encoder.encode = counted
    box.apply_label = apply_once_the_next_chunk_is_encoded
    with labeler:
        report = MailboxRun(labeler).run_mailbox()
    assert overlapped == [True] * 4 and passes == [4, 4]
    assert sorted(o.message_id for o in report.outcomes) == sorted(ids)


def test_graph_can_be_extended_with_a_node(ctx):
    builder = build_inference_graph()

    def audit(state):
        return {"errors": [f"audited {state.routing.label}"]}

    builder.add_node("audit", audit)
    builder.add_edge("apply", "audit")
    out = builder.compile().invoke({"message": ORDER}, context=ctx)
    assert out["errors"] == ["audited 🛒-shopping-orders"]


def test_drawings_show_the_pipeline():
    graph = build_inference_graph().compile().get_graph()
    mermaid = draw(graph, "mermaid")
    for edge in ("__start__ --> summarize", "summarize --> label_router", "label_router --> apply", "apply --> __end__"):
        assert edge in mermaid
    ascii_art = draw(graph, "ascii")
    assert all(name in ascii_art for name in ("summarize", "label_router", "apply"))
    assert draw(graph, "png")[:8] == b"\x89PNG\r\n\x1a\n"


def test_settings_reject_bad_values():
    from labelrouter.errors import ConfigError

    with pytest.raises(ConfigError, match="top_k"):
        load_settings(top_k=0, labels_path=LABELS_JSON)
    with pytest.raises(ConfigError, match="GOOGLE_API_KEY"):
        load_settings(summarizer="gemini").use_gemini()


@pytest.mark.slow  # builds its context from settings: the real encoder
def test_registered_graph_runs_without_a_context():
    """`langgraph dev` passes no context: the nodes build the default one from settings once."""
    from labelrouter.graph.app import graph

    assert graph.invoke({"message": ORDER})["routing"].label == "🛒-shopping-orders"
