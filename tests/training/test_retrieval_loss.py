"""The bi-encoder's loss on fixed batches: same-label candidates are never negatives, a sibling hard
negative costs more than a distant one under hierarchy weighting, and the distilled loss pulls the
bi-encoder toward its teacher's preferences among each row's candidates."""

import numpy as np
import pytest
import torch

from labelrouter.labels import parse_label_set
from labelrouter.training.retrieval_loss import DistilledRankingLoss, LabelRankingLoss

LABELS = parse_label_set({
    "nodes": [{"name": "work"}, {"name": "home"}, {"name": "work.clients", "parent": "work"}],
    "labels": [{"name": "acme", "parent": "work.clients"}, {"name": "globex", "parent": "work.clients"},
               {"name": "payroll", "parent": "work"}, {"name": "garden", "parent": "home"},
               {"name": "receipts"}, {"name": "work"}],
}, require_fallback=False)
ACME, GLOBEX, PAYROLL, GARDEN, RECEIPTS, WORK = range(6)


def test_tree_distances_follow_the_hierarchy():
    d = LABELS.tree_distances()
    assert d[ACME, ACME] == 0 and d[ACME, GLOBEX] == 2  # siblings
    assert d[ACME, PAYROLL] == 3 and d[ACME, GARDEN] == 5 and d[ACME, RECEIPTS] == 4
    assert d[PAYROLL, WORK] == 1 and d[ACME, WORK] == 2  # a label may be a node's namesake parent
    assert (d == d.T).all()
    flat = parse_label_set({"labels": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}, require_fallback=False)
    assert (flat.tree_distances() == 2 - 2 * np.eye(3)).all()


def _unit(*rows):
    t = torch.tensor(rows, dtype=torch.float32)
    return t / t.norm(dim=1, keepdim=True)


def test_a_sibling_hard_negative_costs_more_than_a_distant_one_only_when_weighted():
    messages = _unit([1.0, 0.0, 0.0], [0.0, 1.0, 0.0])
    positives = _unit([0.9, 0.1, 0.0], [0.0, 0.9, 0.1])
    negative = _unit([0.6, 0.0, 0.8], [0.2, 0.2, 0.9])  # the same vectors whichever label they stand for
    distances = LABELS.tree_distances()
    weighted = LabelRankingLoss(None, distances, weighting="hierarchy")
    flat = LabelRankingLoss(None, distances, weighting="flat")

    def loss(fn, hard):  # message 0 is acme, message 1 receipts; message 0's hard negative is `hard`
        return float(fn.compute_loss_from_embeddings([messages, positives, negative],
                                                     torch.tensor([[ACME, hard], [RECEIPTS, PAYROLL]])))

    assert loss(weighted, GLOBEX) > loss(weighted, PAYROLL) > loss(weighted, GARDEN)
    assert loss(flat, GLOBEX) == pytest.approx(loss(flat, GARDEN))


def test_another_message_of_the_same_label_is_never_a_negative_and_each_label_counts_once():
    torch.manual_seed(0)
    q = torch.nn.functional.normalize(torch.randn(4, 8), dim=1)
    p = torch.nn.functional.normalize(torch.randn(4, 8), dim=1)
    n = torch.nn.functional.normalize(torch.randn(4, 8), dim=1)
    ids = torch.tensor([[ACME, GARDEN], [ACME, GARDEN], [GARDEN, ACME], [RECEIPTS, ACME]])
    loss = LabelRankingLoss(None, LABELS.tree_distances(), weighting="flat", scale=20.0)
    got = loss.compute_loss_from_embeddings([q, p, n], ids)
    # By hand: candidates p0 (acme), p1 (acme), p2 (garden), p3 (receipts), n0..n3 (garden, garden, acme, acme).
    # Each row: its own positive, plus the first candidate of every other label.
    candidates = torch.cat([p, n])
    allowed = {0: [0, 2, 3], 1: [1, 2, 3], 2: [2, 0, 3], 3: [3, 0, 2]}
    expected = []
    for row, columns in allowed.items():
        logits = 20.0 * (q[row] @ candidates[columns].T)
        expected.append(-(logits[0] - torch.logsumexp(logits, dim=0)))
    assert float(got) == pytest.approx(float(torch.stack(expected).mean()), rel=1e-5)
    # Moving message 1's positive (acme, a duplicate) changes nothing for rows 0, 2 and 3.
    moved = p.clone()
    moved[1] = -moved[1]
    row1 = lambda pos: float(-(20.0 * (q[1] @ torch.cat([pos, n])[[1, 2, 3]].T)).log_softmax(0)[0])  # noqa: E731
    delta = float(loss.compute_loss_from_embeddings([q, moved, n], ids)) - float(got)
    assert delta == pytest.approx((row1(moved) - row1(p)) / 4, rel=1e-4)


def test_an_unknown_weighting_is_refused():
    with pytest.raises(ValueError, match="weighting"):
        LabelRankingLoss(None, LABELS.tree_distances(), weighting="sibling")


def test_the_distilled_loss_adds_the_teacher_s_kl_to_the_ranking_loss():
    torch.manual_seed(1)
    q, p, n1, n2 = (torch.nn.functional.normalize(torch.randn(3, 8), dim=1) for _ in range(4))
    ids = torch.tensor([[ACME, GLOBEX, GARDEN], [RECEIPTS, PAYROLL, ACME], [GARDEN, WORK, GLOBEX]], dtype=torch.float32)
    teacher = torch.tensor([[4.0, 2.0, -3.0], [3.0, -1.0, 0.0], [5.0, 1.0, 1.0]])
    loss = DistilledRankingLoss(None, LABELS.tree_distances(), weighting="flat", distill_weight=0.5)
    ranking = LabelRankingLoss(None, LABELS.tree_distances(), weighting="flat")
    got = float(loss.compute_loss_from_embeddings([q, p, n1, n2], torch.cat([ids, teacher], dim=1)))
    # By hand: KL(teacher's softmax over the row's 3 candidates ‖ the student's softmax of 20 · cosine).
    student = torch.stack([20.0 * (q * c).sum(1) for c in (p, n1, n2)], dim=1).log_softmax(1)
    target = teacher.softmax(1)
    kl = float((target * (target.log() - student)).sum(1).mean())
    assert got == pytest.approx(float(ranking.compute_loss_from_embeddings([q, p, n1, n2], ids)) + 0.5 * kl, rel=1e-5)


def test_the_teacher_s_preference_among_the_negatives_moves_the_bi_encoder():
    """Same positive, same negatives: a teacher that calls the first negative nearly right costs less
    when the student agrees, and its gradient draws the message toward that negative's label text."""
    q = _unit([1.0, 0.0, 0.0]).requires_grad_(True)
    p, near, far = _unit([0.9, 0.3, 0.0]), _unit([0.5, 0.8, 0.0]), _unit([0.5, 0.0, 0.8])
    ids = torch.tensor([[ACME, GLOBEX, GARDEN]], dtype=torch.float32)
    loss = DistilledRankingLoss(None, LABELS.tree_distances(), weighting="flat", distill_weight=1.0)

    def value(teacher, query=q):
        return loss.compute_loss_from_embeddings([query, p, near, far], torch.cat([ids, torch.tensor([teacher])], dim=1))

    likes_near, likes_far = [3.0, 2.5, -3.0], [3.0, -3.0, 2.5]
    leaning = _unit([1.0, 0.2, 0.0])  # a message already a little nearer the first negative
    assert float(value(likes_near, leaning)) < float(value(likes_far, leaning))
    value(likes_near).backward()  # from a message as near one negative as the other
    step = q.detach() - 0.1 * q.grad  # one gradient step on the message's embedding
    moved_near = float(torch.nn.functional.cosine_similarity(step, near))
    q.grad = None
    value(likes_far).backward()
    other = q.detach() - 0.1 * q.grad
    assert moved_near > float(torch.nn.functional.cosine_similarity(other, near))


def test_the_distilled_loss_wants_ids_and_teacher_scores_for_every_candidate():
    q = _unit([1.0, 0.0], [0.0, 1.0])
    loss = DistilledRankingLoss(None, LABELS.tree_distances())
    with pytest.raises(ValueError, match="label ids, then teacher scores"):
        loss.compute_loss_from_embeddings([q, q, q], torch.tensor([[ACME, GLOBEX], [GARDEN, ACME]]))
