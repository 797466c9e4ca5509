"""Did a training job learn? Its loss history against itself and against a uniform guess.

A cross-encoder whose new head never learned keeps the loss of a model that scores every candidate
alike (ln G for group-wise softmax CE over G documents): its scores are noise, and a bi-encoder
distilled from them gets worse. Every trainer ends with `check_learning` on its per-step losses and
the loss a uniform guess would have had on its data (the `*_uniform` functions below); the verdict
goes into the model's ``training.json`` and, when training did not learn, into the job's log and
the end-of-run summary.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

LEARNED, FLAT, DIVERGED = "learned", "did not learn", "diverged"


@dataclass(frozen=True)
class LearningCheck:
    verdict: str  # LEARNED, FLAT or DIVERGED
    first: float  # mean loss of the first tenth of the steps
    last: float  # mean loss of the last tenth
    uniform: float | None  # the loss of a uniform guess on this data (None: unknown)
    steps: int

    @property
    def learned(self) -> bool:
        return self.verdict == LEARNED

    def message(self, who: str) -> str:
        """e.g. ``cross-encoder 1 did not learn: loss 2.08 -> 2.07 (a uniform guess: 2.08)``."""
        guess = f" (a uniform guess: {self.uniform:.3g})" if self.uniform is not None else ""
        return f"{who} {self.verdict}: loss {self.first:.3g} -> {self.last:.3g} over {self.steps} steps{guess}"

    def to_dict(self) -> dict:
        return asdict(self)


def check_learning(losses: Sequence[float] | Sequence[tuple[int, float]], uniform: float | None = None, *,
                   min_drop: float = 0.05, below_uniform: float = 0.9) -> LearningCheck:
    """The verdict on a loss history (per-step losses, or (step, loss) pairs as `training.train` keeps).

    The first and last tenth of the steps (at least one step each) are averaged. Learned: the loss fell
    by at least `min_drop` of its start, or ends under `below_uniform` times a uniform guess (a warm
    start that was trained before may begin low and stay there). Diverged (checked first): it ends
    non-finite or rose by more than `min_drop`. Anything else did not learn.
    """
    values = [float(v[1]) if isinstance(v, tuple | list) else float(v) for v in losses]
    if not values:
        return LearningCheck(FLAT, math.nan, math.nan, uniform, 0)
    tenth = max(1, len(values) // 10)
    first, last = float(np.mean(values[:tenth])), float(np.mean(values[-tenth:]))
    if not (math.isfinite(first) and math.isfinite(last)):
        verdict = DIVERGED
    elif last > first + min_drop * abs(first):
        verdict = DIVERGED
    elif last <= first - min_drop * abs(first) or (uniform is not None and last <= below_uniform * uniform):
        verdict = LEARNED
    else:
        verdict = FLAT
    return LearningCheck(verdict, first, last, uniform, len(values))


# --------------------------------------------------------------------------------------------------
# the loss of a uniform guess, per loss


def group_ce_uniform(group_size: int) -> float:
    """Group-wise softmax CE when every document of a group scores alike: ln G."""
    return math.log(int(group_size))


def kl_uniform(teacher_groups: np.ndarray, teacher_temperature: float = 1.0) -> float:
    """KL(softmax(teacher / T) || uniform), averaged over groups ``(n, G)``: a student that scores alike."""
    t = np.asarray(teacher_groups, dtype=np.float64) / teacher_temperature
    t = t - t.max(axis=1, keepdims=True)
    log_p = t - np.log(np.exp(t).sum(axis=1, keepdims=True))
    return float(np.mean((np.exp(log_p) * log_p).sum(axis=1) + math.log(t.shape[1])))


def margin_mse_uniform(teacher_groups: np.ndarray) -> float:
    """MarginMSE when the student's margins are all 0: the mean squared teacher margin."""
    t = np.asarray(teacher_groups, dtype=np.float64)
    return float(np.mean((t[:, :1] - t[:, 1:]) ** 2))


def inbatch_uniform(batch_size: int, group_size: int) -> float:
    """In-batch CE over every document of a batch (batch x group of them) when all score alike."""
    return math.log(int(batch_size) * int(group_size))


def mse_uniform(labels: np.ndarray) -> float:
    """MSE of predicting the labels' mean for every example: their variance."""
    return float(np.var(np.asarray(labels, dtype=np.float64)))


def bce_uniform(labels: np.ndarray) -> float:
    """BCE (soft labels in [0, 1]) of predicting the labels' mean for every example."""
    y = np.clip(np.asarray(labels, dtype=np.float64), 0.0, 1.0)
    p = min(max(float(y.mean()), 1e-7), 1 - 1e-7)
    return float(-np.mean(y * math.log(p) + (1 - y) * math.log(1 - p)))


def cosent_uniform(labels: np.ndarray, batch_size: int, seed: int = 0) -> float:
    """CoSENT with every score alike: log(1 + number of ordered label pairs) of a batch, averaged over
    the batches of a seeded shuffle of `labels` (the trainer's batches are such shuffles)."""
    y = np.asarray(labels, dtype=np.float64)
    order = np.random.default_rng(seed).permutation(len(y))
    values = []
    for start in range(0, len(y) - int(batch_size) + 1, int(batch_size)):
        b = y[order[start:start + int(batch_size)]]
        values.append(math.log1p(int((b[:, None] > b[None, :]).sum())))
    return float(np.mean(values)) if values else math.nan
