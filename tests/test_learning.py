"""The no-learning check on hand-made loss histories, and the loss of a uniform guess per loss."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bicross.learning import (
    DIVERGED,
    FLAT,
    LEARNED,
    bce_uniform,
    check_learning,
    cosent_uniform,
    group_ce_uniform,
    inbatch_uniform,
    kl_uniform,
    margin_mse_uniform,
    mse_uniform,
)
from bicross.losses import DistillKL, GroupSoftmaxCE, InBatchCE, MarginMSE


def test_a_falling_loss_learned():
    check = check_learning([(s, 2.08 - 0.015 * s) for s in range(1, 101)], uniform=math.log(8))
    assert check.verdict == LEARNED and check.learned
    assert check.first == pytest.approx(np.mean([2.08 - 0.015 * s for s in range(1, 11)]))
    assert check.steps == 100


def test_a_flat_loss_at_the_uniform_guess_did_not_learn():
    losses = [math.log(8) + 0.01 * math.sin(s) for s in range(200)]
    check = check_learning(losses, uniform=math.log(8))
    assert check.verdict == FLAT and not check.learned
    message = check.message("cross-encoder 1")
    assert message.startswith("cross-encoder 1 did not learn: loss 2.08")
    assert "(a uniform guess: 2.08)" in message


def test_a_rising_or_broken_loss_diverged():
    assert check_learning([1.0] * 10 + [1.5] * 90, uniform=2.0).verdict == DIVERGED
    assert check_learning([1.0] * 50 + [float("nan")] * 50).verdict == DIVERGED


def test_a_warm_start_already_below_the_uniform_guess_learned():
    """A cross-encoder continued from iteration k-1 starts low and stays there: not a failure."""
    assert check_learning([0.61, 0.60, 0.62] * 20, uniform=math.log(8)).verdict == LEARNED
    assert check_learning([0.61, 0.60, 0.62] * 20).verdict == FLAT  # without a reference it cannot tell


def test_one_step_and_no_steps():
    assert check_learning([2.0], uniform=2.0).verdict == FLAT
    assert check_learning([]).steps == 0 and check_learning([]).verdict == FLAT


def test_uniform_guesses_equal_the_losses_of_constant_scores():
    teacher = torch.tensor([[3.0, 1.0, 0.5, -1.0], [0.2, 0.1, 0.0, 2.0]])
    flat = torch.zeros_like(teacher)
    assert group_ce_uniform(4) == pytest.approx(GroupSoftmaxCE(4)(flat).item())
    assert kl_uniform(teacher.numpy(), 2.0) == pytest.approx(DistillKL(2.0, 0.05)(flat, teacher).item(), rel=1e-5)
    assert margin_mse_uniform(teacher.numpy()) == pytest.approx(MarginMSE(20.0)(flat, teacher).item(), rel=1e-5)
    q, d = torch.ones(2, 3), torch.ones(8, 3)
    assert inbatch_uniform(2, 4) == pytest.approx(InBatchCE(0.05)(q, d, 4).item(), rel=1e-5)
    labels = np.array([0.1, 0.4, 0.9, 0.6])
    assert mse_uniform(labels) == pytest.approx(np.mean((labels - labels.mean()) ** 2))
    p = labels.mean()
    bce = torch.nn.functional.binary_cross_entropy(torch.full((4,), p, dtype=torch.float64),
                                                   torch.tensor(labels))
    assert bce_uniform(labels) == pytest.approx(bce.item())


def test_cosent_uniform_counts_ordered_pairs():
    from bicross.losses import CoSENT

    cosent_loss = CoSENT()

    labels = np.array([0.1, 0.4, 0.9, 0.6, 0.6, 0.2])
    # one batch of everything: 14 ordered pairs (15 pairs, one tie) and constant scores give log(1 + 14)
    assert cosent_uniform(labels, batch_size=6) == pytest.approx(math.log(15))
    flat = torch.zeros(6)
    assert cosent_loss(flat, torch.tensor(labels)).item() == pytest.approx(math.log(15), rel=1e-6)
