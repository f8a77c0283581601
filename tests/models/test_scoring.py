"""The scoring contract on synthetic similarities (no model): ranges, top-K, product, argmax, fallback."""

import numpy as np

from labelrouter.models.scoring import ScoringParams, router_weights, score


def _random_case(seed: int, n: int = 50, labels: int = 40):
    rng = np.random.default_rng(seed)
    return rng.uniform(-0.2, 0.8, (n, labels)), rng.uniform(0, 1, (n, labels))


def test_ranges_topk_and_final_is_router_times_head():
    sims, head = _random_case(0)
    params = ScoringParams(top_k=20, threshold=0.3)
    s = score(sims, head, params)
    assert (s.router >= 0).all() and (s.router <= 100).all()
    assert (s.head >= 0).all() and (s.head <= 1).all()
    np.testing.assert_allclose(s.final, s.router * s.head)
    for row in range(sims.shape[0]):
        head_top = np.argsort(-head[row], kind="stable")[: params.head_k]
        candidates = np.union1d(s.topk[row], head_top)
        outside = np.setdiff1d(np.arange(sims.shape[1]), candidates)
        assert len(s.topk[row]) == 20 and s.candidates[row].sum() == len(candidates)
        assert (s.router[row, outside] == 0).all()  # more labels than K: the rest get exactly 0
        assert (s.router[row, candidates] > 0).all()  # retrieved, or proposed by the head
        assert s.top[row] == np.argmax(s.final[row])
        assert np.isclose(s.confidence[row], s.final[row].max() / 100)
        ordered = np.sort(s.final[row])[::-1]
        assert np.isclose(s.margin[row], ordered[0] - ordered[1])
        assert s.fallback[row] == (s.confidence[row] < 0.3)


def test_the_head_proposes_candidates_only_when_it_has_an_opinion():
    sims = np.array([[0.5, 0.4, 0.3, 0.0, -0.1]])
    params = ScoringParams(top_k=2, head_k=1)
    cold = score(sims, np.ones((1, 5)), params)
    assert cold.candidates[0].tolist() == [True, True, False, False, False]
    trained = score(sims, np.array([[0.1, 0.1, 0.1, 0.1, 0.9]]), params)
    assert trained.candidates[0].tolist() == [True, True, False, False, True]
    assert trained.router[0, 4] > 0 and trained.router[0, 3] == 0


def test_mapping_keeps_absolute_information():
    params = ScoringParams(center=0.25, scale=0.07)
    weak = np.array([[0.10, 0.05, 0.02]])  # the winner is clearly ahead, but matches nothing well
    strong = np.array([[0.55, 0.05, 0.02]])
    ones = np.ones((1, 3))
    assert score(weak, ones, params).fallback[0]
    assert not score(strong, ones, params).fallback[0]
    # Monotonic in similarity, 50 at the centre.
    w = router_weights(np.array([0.0, 0.25, 0.5]), params)
    assert w[0] < w[1] < w[2] and np.isclose(w[1], 50.0)


def test_head_can_overrule_the_router():
    sims = np.array([[0.50, 0.45, 0.0]])
    assert score(sims, np.array([[1.0, 1.0, 1.0]]), ScoringParams()).top[0] == 0
    assert score(sims, np.array([[0.2, 0.9, 1.0]]), ScoringParams()).top[0] == 1


def test_non_routable_label_is_never_retrieved_or_chosen():
    sims = np.array([[0.9, 0.4, 0.3]])
    mask = np.array([False, True, True])  # label 0 is the fallback
    s = score(sims, np.ones((1, 3)), ScoringParams(top_k=2), mask)
    assert 0 not in s.topk[0] and s.router[0, 0] == 0 and s.top[0] == 1


def test_no_fallback_label_means_no_fallback():
    s = score(np.array([[0.0, -0.1]]), np.ones((1, 2)), ScoringParams(threshold=0.9), has_fallback=False)
    assert not s.fallback[0]


def test_a_fallback_on_the_margin_catches_a_near_tie_that_the_confidence_lets_through():
    sims = np.array([[0.6, 0.6, 0.0], [0.3, 0.0, 0.0]])
    head = np.array([[0.9, 0.85, 0.1], [0.5, 0.01, 0.01]])  # a near tie at 0.9; a lone, modest winner
    by_confidence = score(sims, head, ScoringParams(threshold=0.35))
    by_margin = score(sims, head, ScoringParams(threshold=20.0, fallback_on="margin"))
    assert by_confidence.confidence[0] > 0.8 and by_confidence.margin[0] < 5  # sure of the pair, not of the one
    assert by_confidence.confidence[1] < 0.35 and by_confidence.margin[1] > 20
    assert by_confidence.fallback.tolist() == [False, True]
    assert by_margin.fallback.tolist() == [True, False]
    assert by_margin.certainty("margin").tolist() == by_margin.margin.tolist()
    try:
        score(sims, head, ScoringParams(fallback_on="entropy"))
    except ValueError as e:
        assert "fallback_on" in str(e)
    else:
        raise AssertionError("an unknown statistic must be refused")
