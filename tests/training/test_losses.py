"""Losses against hand computations on tiny vectors."""

import math

import pytest
import torch
import torch.nn.functional as F

from llembed.training.losses import CoSENTLoss, EmbedderDistillationLoss, InfoNCELoss, ScoreDistillationLoss, mntp_loss
from llembed.training.losses.mntp import IGNORE


def _cos(a, b):
    return sum(x * y for x, y in zip(a, b, strict=True)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


Q = [[1.0, 0.0], [0.0, 2.0]]
P = [[2.0, 0.0], [1.0, 1.0]]
N = [[0.0, -1.0], [-1.0, 1.0]]


def _ce(logits, target):
    return -logits[target] + math.log(sum(math.exp(v) for v in logits))


def test_infonce_with_hard_negatives_matches_hand_computation():
    t = 0.5
    candidates = P + N
    expected = sum(_ce([_cos(Q[i], c) / t for c in candidates], i) for i in range(2)) / 2
    loss = InfoNCELoss(temperature=t)(torch.tensor(Q), torch.tensor(P), torch.tensor(N))
    assert float(loss) == pytest.approx(expected, abs=1e-6)


def test_infonce_symmetric_adds_the_positive_to_query_direction():
    t = 0.1
    forward = sum(_ce([_cos(Q[i], c) / t for c in P], i) for i in range(2)) / 2
    backward = sum(_ce([_cos(P[i], q) / t for q in Q], i) for i in range(2)) / 2
    loss = InfoNCELoss(temperature=t, symmetric=True)(torch.tensor(Q), torch.tensor(P))
    assert float(loss) == pytest.approx((forward + backward) / 2, abs=1e-5)


def test_infonce_matryoshka_averages_the_truncated_losses():
    torch.manual_seed(0)
    q, p, n = torch.randn(4, 8), torch.randn(4, 8), torch.randn(4, 8)
    full, cut = InfoNCELoss(0.05)(q, p, n), InfoNCELoss(0.05)(q[:, :3], p[:, :3], n[:, :3])
    both = InfoNCELoss(0.05, matryoshka_dims=[8, 3])(q, p, n)
    assert float(both) == pytest.approx(float((full + cut) / 2), abs=1e-6)


def test_infonce_rejects_bad_temperature():
    with pytest.raises(ValueError, match="temperature"):
        InfoNCELoss(temperature=0)


def test_score_distillation_is_kl_over_each_querys_own_candidates():
    t, tt = 0.5, 2.0
    teacher = [[3.0, 1.0], [0.0, 2.0]]  # scores of [positive, its one negative]
    expected = 0.0
    for i in range(2):
        student = [_cos(Q[i], P[i]) / t, _cos(Q[i], N[i]) / t]
        z = sum(math.exp(v / tt) for v in teacher[i])
        target = [math.exp(v / tt) / z for v in teacher[i]]
        zs = sum(math.exp(v) for v in student)
        expected += sum(p * (math.log(p) - (s - math.log(zs))) for p, s in zip(target, student, strict=True))
    loss = ScoreDistillationLoss(t, tt)(torch.tensor(Q), torch.tensor(P), torch.tensor(N), torch.tensor(teacher))
    assert float(loss) == pytest.approx(expected / 2, abs=1e-6)


def test_score_distillation_checks_counts():
    with pytest.raises(ValueError, match="negatives"):
        ScoreDistillationLoss()(torch.ones(2, 2), torch.ones(2, 2), torch.ones(3, 2), torch.ones(2, 2))


def test_embedder_distillation_similarity_mse_works_across_widths():
    torch.manual_seed(1)
    sq, sc = torch.randn(3, 5), torch.randn(4, 5)
    tq, tc = torch.randn(3, 7), torch.randn(4, 7)
    s = F.normalize(sq, dim=1) @ F.normalize(sc, dim=1).T
    t = F.normalize(tq, dim=1) @ F.normalize(tc, dim=1).T
    loss = EmbedderDistillationLoss("similarity_mse")(sq, sc, tq, tc)
    assert float(loss) == pytest.approx(float(((s - t) ** 2).mean()), abs=1e-6)
    with pytest.raises(ValueError, match="equal widths"):
        EmbedderDistillationLoss("cosine")(sq, sc, tq, tc)


def test_embedder_distillation_cosine_is_zero_for_parallel_vectors():
    v = torch.tensor([[1.0, 2.0], [3.0, -1.0]])
    assert float(EmbedderDistillationLoss("cosine")(v, v, 2 * v, 5 * v)) == pytest.approx(0.0, abs=1e-6)
    assert float(EmbedderDistillationLoss("mse")(v, v, 2 * v, 5 * v)) == pytest.approx(0.0, abs=1e-6)


def test_mntp_predicts_a_masked_token_from_the_previous_position():
    logits = torch.full((1, 3, 4), -10.0)
    logits[0, 0, 2] = 10.0  # position 0 predicts token 1 = id 2: right
    logits[0, 1, 1] = 10.0  # position 1 predicts token 2 = id 3: wrong
    labels = torch.tensor([[IGNORE, 2, 3]])
    right = -F.log_softmax(logits[0, 0], dim=-1)[2]
    wrong = -F.log_softmax(logits[0, 1], dim=-1)[3]
    assert float(mntp_loss(logits, labels)) == pytest.approx(float((right + wrong) / 2), abs=1e-5)
    only_first = torch.tensor([[IGNORE, 2, IGNORE]])
    assert float(mntp_loss(logits, only_first)) == pytest.approx(float(right), abs=1e-6)
    assert float(mntp_loss(logits, torch.full((1, 3), IGNORE))) == 0.0


def test_cosent_penalises_each_pair_ranked_below_a_lower_labelled_pair():
    first = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    second = torch.tensor([[1.0, 1.0], [1.0, 0.0], [0.0, 1.0]])  # cosines 0.7071, 1, 0
    labels = torch.tensor([5.0, 2.0, 0.0])
    cos = [_cos(a, b) for a, b in zip(first.tolist(), second.tolist(), strict=True)]
    # ordered pairs (i, j) with label_i > label_j: (0,1), (0,2), (1,2); each adds exp(20 (cos_j − cos_i))
    expected = math.log(1 + sum(math.exp(20 * (cos[j] - cos[i])) for i, j in [(0, 1), (0, 2), (1, 2)]))
    assert CoSENTLoss(scale=20.0)(first, second, labels).item() == pytest.approx(expected, rel=1e-5)
    # ties in the label add nothing; a perfectly ordered batch costs almost nothing
    assert CoSENTLoss()(first, second, torch.tensor([1.0, 1.0, 1.0])).item() == pytest.approx(0.0)
    assert CoSENTLoss()(first, second, torch.tensor([2.0, 5.0, 0.0])).item() < 0.01  # exp(20·(0.71 − 1))


def test_cosent_matryoshka_averages_the_truncated_losses():
    first, second = torch.randn(4, 8), torch.randn(4, 8)
    labels = torch.tensor([0.0, 1.0, 2.0, 3.0])
    whole = CoSENTLoss(matryoshka_dims=[8, 2])(first, second, labels)
    parts = [CoSENTLoss()(first[:, :d], second[:, :d], labels) for d in (8, 2)]
    assert whole.item() == pytest.approx(sum(p.item() for p in parts) / 2, rel=1e-6)


def test_maxsim_by_hand_ignores_padding_rows():
    from llembed.training.losses.late_interaction import maxsim_scores

    # query: tokens (1, 0) and (0, 1), then a padding row; candidate A: (1, 0) and (-1, 0) padded; B: (0, 2)
    queries = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]])
    candidates = torch.tensor([[[1.0, 0.0], [-1.0, 0.0], [0.0, 0.0]], [[0.0, 2.0], [0.0, 0.0], [0.0, 0.0]]])
    scores = maxsim_scores(queries, candidates)
    # A: token 1 best 1, token 2 best 0 (the padding row, also 0, must not count: -1 and 1 are the real ones)
    # B: token 1 best cos((1,0),(0,1)) = 0, token 2 best 1 → mean 0.5 each
    assert scores.tolist() == [[pytest.approx(0.5), pytest.approx(0.5)]]
    # a candidate whose only real token is opposite: the padding's cosine 0 would win if it were matched
    opposite = torch.tensor([[[-1.0, -1.0], [0.0, 0.0], [0.0, 0.0]]])
    assert maxsim_scores(queries, opposite).item() == pytest.approx(-1 / math.sqrt(2))


def test_maxsim_equals_search_time_maxsim():
    import numpy as np

    from llembed.multivector import MultiVectors, maxsim
    from llembed.training.losses.late_interaction import maxsim_scores

    generator = torch.Generator().manual_seed(0)
    lengths_q, lengths_d = [3, 5], [2, 6, 4]

    def padded(lengths):
        rows = torch.zeros(len(lengths), 6, 8)
        for i, n in enumerate(lengths):
            rows[i, :n] = torch.randn(n, 8, generator=generator)
        return rows

    q, d = padded(lengths_q), padded(lengths_d)
    search = maxsim(
        MultiVectors.of([q[i, :n].numpy() for i, n in enumerate(lengths_q)]),
        MultiVectors.of([d[i, :n].numpy() for i, n in enumerate(lengths_d)]),
    )
    np.testing.assert_allclose(maxsim_scores(q, d).numpy(), search, atol=1e-6)


def test_late_interaction_loss_is_cross_entropy_over_maxsim():
    from llembed.training.losses import LateInteractionLoss
    from llembed.training.losses.late_interaction import maxsim_scores

    generator = torch.Generator().manual_seed(1)
    q, p, n = (torch.randn(k, 4, 8, generator=generator) for k in (2, 2, 3))
    scores = maxsim_scores(q, torch.cat([p, n])).tolist()
    expected = (_ce([v / 0.1 for v in scores[0]], 0) + _ce([v / 0.1 for v in scores[1]], 1)) / 2
    assert LateInteractionLoss(0.1)(q, p, n).item() == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="temperature"):
        LateInteractionLoss(0.0)
