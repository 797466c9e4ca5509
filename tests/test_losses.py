"""Losses: hand-computed values and the input layouts they accept."""

from __future__ import annotations

import math

import pytest
import torch

from bicross.losses import GroupSoftmaxCE, as_groups


def test_group_softmax_ce_hand_computed():
    scores = torch.tensor([[2.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    # group 1: -log(e^2 / (e^2 + e + 1)) = 0.407606; group 2: -log(1/3) = log 3 = 1.098612
    expected = (0.4076059644 + math.log(3)) / 2
    assert expected == pytest.approx(0.7531091, abs=1e-6)
    assert GroupSoftmaxCE()(scores).item() == pytest.approx(expected, abs=1e-6)


def test_flat_and_column_layouts_match_2d():
    torch.manual_seed(0)
    scores = torch.randn(4, 8)
    loss = GroupSoftmaxCE(8)
    assert loss(scores.reshape(-1)).item() == pytest.approx(loss(scores).item(), abs=1e-7)
    assert loss(scores.reshape(-1, 1)).item() == pytest.approx(loss(scores).item(), abs=1e-7)  # 1-label logits
    assert GroupSoftmaxCE()(scores.reshape(-1), 8).item() == pytest.approx(loss(scores).item(), abs=1e-7)


def test_positive_is_index_zero():
    scores = torch.tensor([[5.0, 0.0, 0.0, 0.0]])
    good = GroupSoftmaxCE()(scores).item()
    bad = GroupSoftmaxCE()(scores[:, [1, 0, 2, 3]]).item()
    assert good < 0.1 < 5 < bad


def test_gradient_is_softmax_minus_onehot_over_groups():
    scores = torch.tensor([[1.0, 2.0, 3.0], [0.5, 0.0, -0.5]], requires_grad=True)
    GroupSoftmaxCE()(scores).backward()
    expected = torch.softmax(scores.detach(), -1)
    expected[:, 0] -= 1
    assert torch.allclose(scores.grad, expected / 2, atol=1e-6)


def test_low_precision_scores_are_upcast():
    scores = torch.randn(3, 8)
    loss = GroupSoftmaxCE()(scores.bfloat16())
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(GroupSoftmaxCE()(scores.bfloat16().float()).item(), abs=1e-6)


def test_temperature_scales_scores():
    scores = torch.randn(2, 4)
    assert GroupSoftmaxCE(temperature=0.5)(scores).item() == pytest.approx(
        GroupSoftmaxCE()(scores * 2).item(), abs=1e-6)
    with pytest.raises(ValueError):
        GroupSoftmaxCE(temperature=0)


def test_bad_layouts_are_errors():
    with pytest.raises(ValueError, match="group size"):
        as_groups(torch.zeros(8))
    with pytest.raises(ValueError, match="do not split"):
        as_groups(torch.zeros(10), 8)
    with pytest.raises(ValueError, match="expected 8"):
        as_groups(torch.zeros(2, 4), 8)
    with pytest.raises(ValueError):
        as_groups(torch.zeros(2, 2, 2), 2)


def test_cosent_matches_its_definition_and_ignores_the_targets_scale():
    import math

    import torch

    from bicross.losses import CoSENT

    cosent_loss = CoSENT(20.0)
    cosine = torch.tensor([0.9, 0.2, 0.5, 0.4])
    labels = torch.tensor([0.8, 0.1, 0.3, 0.3])  # a tie: pairs 2 and 3 do not count against each other
    terms = [math.exp(20 * (cosine[j] - cosine[i]).item())
             for i in range(4) for j in range(4) if labels[i] > labels[j]]
    assert cosent_loss(cosine, labels).item() == pytest.approx(math.log(1 + sum(terms)), rel=1e-5)
    # a monotone transform of the targets (a teacher on another scale) leaves the loss unchanged
    assert cosent_loss(cosine, torch.sigmoid(5 * labels) * 3).item() == pytest.approx(cosent_loss(cosine, labels).item())
    # cosines ranked like the targets by a wide margin: nothing left to learn
    assert cosent_loss(torch.tensor([1.0, -1.0]), torch.tensor([0.6, 0.5])).item() < 1e-10
    assert cosent_loss(torch.tensor([-1.0, 1.0]), torch.tensor([0.6, 0.5])).item() == pytest.approx(40, rel=1e-3)


def test_pair_bce_and_mse_match_hand_computed_values():
    import math

    from bicross.losses import PairBCE, PairMSE

    logits, labels = torch.tensor([0.0, 2.0, -1.0]), torch.tensor([0.5, 1.0, 0.25])
    sig = [1 / (1 + math.exp(-x)) for x in (0.0, 2.0, -1.0)]
    by_hand = -sum(y * math.log(p) + (1 - y) * math.log(1 - p) for p, y in zip(sig, (0.5, 1.0, 0.25), strict=True)) / 3
    assert PairBCE()(logits, labels).item() == pytest.approx(by_hand, rel=1e-6)
    assert PairMSE()(torch.tensor([0.9, 0.1]), torch.tensor([0.5, 0.4])).item() == pytest.approx((0.16 + 0.09) / 2)
    # bf16 predictions are upcast: the loss is computed in float32
    assert PairMSE()(torch.tensor([0.9, 0.1], dtype=torch.bfloat16), torch.tensor([0.5, 0.4])).dtype == torch.float32
