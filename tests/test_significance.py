"""Paired tests of a change: the randomisation test, the bootstrap interval, the Spearman bootstrap."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from bicross.significance import (
    RANDOMISATION,
    Change,
    _resampled_ranks,
    bootstrap_interval,
    mean_change,
    randomisation_p,
    spearman_change,
)
from bicross.sts.evaluate import _ranks, correlations


def test_randomisation_p_by_hand():
    # d = (1, 2, 3): of the 8 sign assignments only (+,+,+) and (-,-,-) reach |sum| = 6
    assert randomisation_p([1, 2, 3], resamples=10_000, seed=0) == pytest.approx(2 / 8)
    # five equal gains: again only the two one-sign assignments are as extreme
    assert randomisation_p([0.1] * 5, resamples=10_000, seed=0) == pytest.approx(2 / 32)
    # (1, -1, 2), |sum| 2: the sums are 2, -2, 4, 0, 0, -4, 2, -2; all but the two zeros reach 2
    assert randomisation_p([1, -1, 2], resamples=10_000, seed=0) == pytest.approx(6 / 8)
    assert randomisation_p([0.0, 0.0], resamples=10_000, seed=0) == 1.0


def test_exact_enumeration_against_a_brute_force_and_monte_carlo():
    d = np.random.default_rng(3).normal(0.3, 1.0, 12)
    brute = np.mean([abs(np.dot(s, d)) >= abs(d.sum()) - 1e-9 for s in itertools.product((-1, 1), repeat=12)])
    assert randomisation_p(d, resamples=2 ** 12, seed=0) == pytest.approx(brute)  # exact: 2^n <= resamples
    monte_carlo = randomisation_p(d, resamples=4000, seed=5)  # fewer resamples than assignments: sampled
    assert monte_carlo != brute and abs(monte_carlo - brute) < 0.03
    assert randomisation_p(d, resamples=4000, seed=5) == monte_carlo  # seeded


def test_bootstrap_interval_by_hand_and_seeded():
    # two queries, d = (0, 1): resampled means are 0, 0.5, 1 with chances 1/4, 1/2, 1/4
    assert bootstrap_interval([0.0, 1.0], resamples=10_000, seed=1) == (0.0, 1.0)
    assert bootstrap_interval([0.2] * 7, resamples=500, seed=1) == pytest.approx((0.2, 0.2))
    d = np.random.default_rng(0).normal(0.05, 0.2, 400)
    low, high = bootstrap_interval(d, resamples=5000, seed=7)
    half = 1.96 * d.std() / np.sqrt(len(d))  # the normal approximation of the mean's interval
    assert low == pytest.approx(d.mean() - half, abs=0.004) and high == pytest.approx(d.mean() + half, abs=0.004)
    assert bootstrap_interval(d, resamples=5000, seed=7) == (low, high)
    assert bootstrap_interval(d, resamples=5000, seed=8) != (low, high)


def test_mean_change_and_its_text():
    a, b = np.array([0.5, 1.0, 0.3, 0.0]), np.array([0.5, 0.5, 0.1, 0.0])
    change = mean_change(a, b, resamples=10_000, seed=0)
    assert change.difference == pytest.approx(0.175) and change.n == 4 and change.test == RANDOMISATION
    # differences (0, 0.5, 0.2, 0): the zeros flip freely, so 8 of 16 assignments (+0.5 +0.2, -0.5 -0.2) reach 0.7
    assert change.p == pytest.approx(8 / 16)
    assert Change(0.0208, 0.0041, 0.0383, 0.0199, "", 100).text() == "+0.0208 [+0.004, +0.038] p=0.020"
    assert Change(2.825, -1.11, 6.79, 0.155, "", 100).text() == "+2.83 [-1.11, +6.79] p=0.155"
    assert Change(0.05, 0.03, 0.07, 1 / 10_001, "", 100).text() == "+0.0500 [+0.030, +0.070] p<0.001"


def test_resampled_ranks_match_ranks_with_ties():
    x = np.array([3.0, 1.0, 1.0, 2.0, 5.0, 2.0])
    draws = np.random.default_rng(0).integers(0, len(x), size=(50, len(x)))
    expected = np.stack([_ranks(x[row]) for row in draws])
    assert np.array_equal(_resampled_ranks(x, draws), expected)


def test_spearman_change_is_a_seeded_paired_bootstrap():
    rng = np.random.default_rng(1)
    gold = rng.integers(0, 6, 300).astype(float)  # ties, as STS gold scores have
    a, b = gold + rng.normal(0, 1, 300), gold + rng.normal(0, 2, 300)
    change = spearman_change(a, b, gold, resamples=2000, seed=3)
    assert change.difference == pytest.approx(correlations(a, gold)["spearman"] - correlations(b, gold)["spearman"])
    assert change.low < change.difference < change.high and change.p < 0.05  # a clearly better scorer
    assert spearman_change(a, b, gold, resamples=2000, seed=3) == change
    same = spearman_change(a, a, gold, resamples=500, seed=3)
    assert (same.difference, same.low, same.high, same.p) == (0.0, 0.0, 0.0, 1.0)
