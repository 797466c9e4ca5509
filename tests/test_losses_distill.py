"""The bi-encoder distillation losses on hand-computed examples."""

import math

import pytest
import torch

from bicross.losses import DistillKL, InBatchCE, MarginMSE


def softmax(xs):
    m = max(xs)
    e = [math.exp(x - m) for x in xs]
    return [v / sum(e) for v in e]


def kl(p, q):
    return sum(a * (math.log(a) - math.log(b)) for a, b in zip(p, q, strict=True))


def test_kl_batchmean_and_both_temperatures():
    student = torch.tensor([[0.9, 0.5, 0.1], [0.2, 0.4, 0.3]])
    teacher = torch.tensor([[4.0, 1.0, -2.0], [0.0, 3.0, 1.0]])
    t_t, t_s = 2.0, 0.5
    want = sum(kl(softmax([x / t_t for x in t]), softmax([x / t_s for x in s]))
               for s, t in zip(student.tolist(), teacher.tolist(), strict=True)) / 2  # mean over groups
    got = DistillKL(teacher_temperature=t_t, student_temperature=t_s)(student, teacher)
    assert got.item() == pytest.approx(want, rel=1e-5)
    flat = DistillKL(t_t, t_s)(student.view(-1), teacher.view(-1), group_size=3)
    assert flat.item() == pytest.approx(want, rel=1e-5)
    assert DistillKL()(teacher, teacher).item() == pytest.approx(0.0, abs=1e-6)


def test_margin_mse():
    student = torch.tensor([[0.8, 0.3, 0.6]])
    teacher = torch.tensor([[5.0, 1.0, 4.0]])
    scale = 10.0
    want = ((scale * (0.8 - 0.3) - 4.0) ** 2 + (scale * (0.8 - 0.6) - 1.0) ** 2) / 2
    assert MarginMSE(scale)(student, teacher).item() == pytest.approx(want, rel=1e-5)


def test_inbatch_ce_targets_each_querys_positive():
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    d = torch.tensor([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0], [0.2, 0.8]])  # group 2: positives rows 0 and 2
    t = 0.5
    scores = (q @ d.T / t).tolist()
    want = -(math.log(softmax(scores[0])[0]) + math.log(softmax(scores[1])[2])) / 2
    assert InBatchCE(t)(q, d, group_size=2).item() == pytest.approx(want, rel=1e-5)
