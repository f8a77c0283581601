"""Micro-batching: concurrent callers share forward passes; nobody waits alone; failures reach everyone."""

import threading

import numpy as np
import pytest

from labelrouter.models.batching import MicroBatcher


def _fake_encode(calls):
    def encode(texts):
        calls.append(list(texts))
        return np.array([[float(len(t))] for t in texts])
    return encode


def _run_concurrently(batcher, texts, *, meanwhile=lambda: None):
    """Every text through `batcher.call` from a thread of its own; `meanwhile` runs once they started."""
    results = [None] * len(texts)

    def worker(i):
        results[i] = batcher.call(texts[i])

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(texts))]
    for t in threads:
        t.start()
    meanwhile()
    for t in threads:
        t.join(timeout=10)
    return results


def test_expected_callers_share_one_batch():
    calls = []
    batcher = MicroBatcher(_fake_encode(calls), max_batch=64, max_wait_s=5.0)
    texts = ["a" * i for i in range(1, 17)]
    batcher.expect(len(texts))
    results = _run_concurrently(batcher, texts)
    assert len(calls) == 1 and sorted(map(len, calls[0])) == list(range(1, 17))
    assert [r[0] for r in results] == [float(len(t)) for t in texts]  # each caller gets its own vector


def test_max_batch_splits_and_a_single_call_does_not_wait():
    calls = []
    batcher = MicroBatcher(_fake_encode(calls), max_batch=4, max_wait_s=5.0)
    batcher.expect(8)
    _run_concurrently(batcher, ["x"] * 8)
    assert sorted(len(c) for c in calls) == [4, 4]
    calls.clear()
    assert batcher.call("solo")[0] == 4.0 and calls == [["solo"]]  # no expectation: immediate


def test_encoder_failure_reaches_every_caller():
    def broken(texts):
        raise RuntimeError("encoder exploded")

    batcher = MicroBatcher(broken, max_batch=8, max_wait_s=5.0)
    batcher.expect(3)
    errors = []

    def worker():
        try:
            batcher.call("t")
        except RuntimeError as exc:
            errors.append(str(exc))

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert errors == ["encoder exploded"] * 3


def test_missing_caller_is_bounded_by_max_wait():
    calls = []
    batcher = MicroBatcher(_fake_encode(calls), max_batch=8, max_wait_s=0.01)
    batcher.expect(3)  # one of the three never arrives (its message failed earlier)
    results = _run_concurrently(batcher, ["a", "bb"])
    assert [r[0] for r in results] == [1.0, 2.0]
    assert sum(len(c) for c in calls) == 2


def test_callers_arriving_spread_out_share_one_batch_while_they_keep_coming():
    # Each arrives well inside the quiet period after the one before, but the last comes after the first
    # caller's own max_wait: the wait counts from the latest arrival, so nobody is encoded alone. The
    # sixth expected caller never comes (its message failed): the batch goes once nobody arrived for 0.5 s.
    calls = []
    batcher = MicroBatcher(_fake_encode(calls), max_batch=64, max_wait_s=0.5)
    batcher.expect(6)
    results = [None] * 5

    def worker(i):
        results[i] = batcher.call("x" * (i + 1))

    threads = []
    for i in range(5):
        threads.append(threading.Thread(target=worker, args=(i,)))
        threads[-1].start()
        threading.Event().wait(0.15)
    for t in threads:
        t.join(timeout=10)
    assert len(calls) == 1 and sorted(map(len, calls[0])) == [1, 2, 3, 4, 5]
    assert [r[0] for r in results] == [1.0, 2.0, 3.0, 4.0, 5.0]


@pytest.mark.parametrize("n", [1, 5])
def test_results_match_unbatched(n):
    batcher = MicroBatcher(_fake_encode([]), max_batch=2, max_wait_s=1.0)
    batcher.expect(n)
    texts = [f"text {'x' * i}" for i in range(n)]
    assert [r[0] for r in _run_concurrently(batcher, texts)] == [float(len(t)) for t in texts]


def test_long_texts_go_a_few_per_forward_pass_and_short_ones_fill_a_batch():
    from labelrouter.models.encoder import batch_size_for, token_batches

    mail, short = "word " * 300, "turn on the lights"
    assert batch_size_for([mail] * 10, 64) == 4  # 256 word pieces each: 4 fit the budget
    assert batch_size_for([short] * 100, 64) == 64 and batch_size_for([], 64) == 64
    texts = [short] * 70 + [mail] * 6
    batches = token_batches(texts, 64)
    assert sorted(i for b in batches for i in b) == list(range(len(texts)))  # each text exactly once
    assert all(len(texts[b[0]]) >= len(texts[i]) for b in batches for i in b)  # longest first in a batch
    assert [len(b) for b in batches][:2] == [4, 4] and max(len(b) for b in batches) == 64


def test_an_accelerator_is_fed_whole_batches_whatever_the_length():
    from labelrouter.models.encoder import Encoder

    encoder = Encoder.__new__(Encoder)  # the batch choice alone: no model needed to ask it
    encoder.batch_size, encoder.model = 256, type("Model", (), {"max_seq_length": 256})()
    mail = ["word " * 300] * 10
    encoder.device = "cpu"
    assert encoder._batch_size(mail) == 4  # the CPU's word-piece budget
    encoder.device = "cuda"
    assert encoder._batch_size(mail) == 256


def test_per_item_exceptions_reach_only_their_caller():
    batcher = MicroBatcher(lambda items: [ValueError(i) if i == "bad" else i.upper() for i in items],
                           max_batch=8, max_wait_s=5.0)
    batcher.expect(3)
    outcomes = [None] * 3

    def worker(k, item):
        try:
            outcomes[k] = batcher.call(item)
        except ValueError as exc:
            outcomes[k] = f"failed: {exc}"

    threads = [threading.Thread(target=worker, args=(k, item)) for k, item in enumerate(["a", "bad", "c"])]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert outcomes == ["A", "failed: bad", "C"] and batcher.batches == [3]


def test_a_chunk_is_scored_in_one_call_and_a_message_that_breaks_scoring_fails_alone(stub_encoder, settings,
                                                                                     monkeypatch):
    from labelrouter.demo import sample_messages
    from labelrouter.graph.labeler import Labeler
    from labelrouter.graph.wiring import build_context
    from labelrouter.mail.parse import parse_message
    from labelrouter.models.router import Router

    messages = [parse_message(raw) for _, raw in sample_messages()[:6]]
    poisoned = messages[2].subject
    calls: list[int] = []
    score = Router.score

    def score_or_break(self, embeddings, documents=None, texts=None):
        calls.append(len(embeddings))
        if any(poisoned in d for d in documents or []):
            raise RuntimeError("this message breaks the head")
        return score(self, embeddings, documents, texts)

    monkeypatch.setattr(Router, "score", score_or_break)
    with Labeler(build_context(settings, mode="decide"), settings, chunk_size=6) as labeler:
        results = labeler.label_many(messages)
    assert calls == [6, 1, 1, 1, 1, 1, 1]  # the chunk at once, then each message alone to find the bad one
    assert isinstance(results[2], RuntimeError)
    assert all(not isinstance(r, Exception) for k, r in enumerate(results) if k != 2)
    monkeypatch.setattr(Router, "score", score)
    with Labeler(build_context(settings, mode="decide"), settings) as labeler:
        alone = [labeler.label(m)["routing"] for k, m in enumerate(messages) if k != 2]
    assert [r["routing"].label for k, r in enumerate(results) if k != 2] == [r.label for r in alone]
    assert [r["routing"].confidence for k, r in enumerate(results) if k != 2] == \
        pytest.approx([r.confidence for r in alone], abs=1e-6)


def test_a_withdrawn_caller_is_not_waited_for():
    calls = []
    batcher = MicroBatcher(_fake_encode(calls), max_batch=8, max_wait_s=30.0)
    batcher.expect(3)
    # the third message was decided by a rule: no text to encode
    results = _run_concurrently(batcher, ["x", "xx"], meanwhile=batcher.withdraw)
    assert results == [[1.0], [2.0]] and len(calls) == 1 and batcher.quiet_flushes == 0


def test_a_message_without_content_does_not_hold_its_chunk(stub_encoder, settings, monkeypatch):
    import labelrouter.graph.labeler
    from labelrouter.demo import sample_messages
    from labelrouter.graph.labeler import Labeler
    from labelrouter.graph.wiring import build_context
    from labelrouter.mail.parse import parse_message
    from labelrouter.state import EmailMessage

    made = []

    class Watched(MicroBatcher):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **{**kwargs, "max_wait_s": 30.0})  # a wait the test would notice
            made.append(self)

    monkeypatch.setattr(labelrouter.graph.labeler, "MicroBatcher", Watched)
    messages = [parse_message(raw) for _, raw in sample_messages()[:3]] + [EmailMessage(id="empty")]
    with Labeler(build_context(settings, mode="decide"), settings, chunk_size=4) as labeler:
        results = labeler.label_many(messages)
    assert results[3]["routing"].label == labeler.ctx.labels.fallback
    assert made[0].batches == [3] and made[0].quiet_flushes == 0
