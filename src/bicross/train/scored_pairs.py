"""What the two task-sts recipes share: sentence pairs with the teachers' scores as labels.

The pairs file has no gold column (bicross.data.sts.unlabelled): gold scores never reach training.
"""

from __future__ import annotations

import numpy as np

from bicross.errors import InputError
from bicross.sts.labels import mean_scores
from bicross.sts.score import read_pairs

INPUTS = {
    "pairs": "Parquet: pair_id, text_a, text_b (no gold scores)",
    "labels": "teacher PAIR_SCORES Parquet file(s), averaged (weighted by label_weights)",
}
MANY = ("labels",)


class ScoredPairs:
    """A map-style dataset: token ids of each pair and its label; `both_orders` adds (b, a) after the n pairs (a, b).

    Item i of epoch e comes from a permutation seeded with (seed, e), the same in every process.
    """

    def __init__(self, a: list[list[int]], b: list[list[int]], labels: np.ndarray, seed: int, both_orders: bool):
        self.a, self.b, self.labels = a, b, np.asarray(labels, dtype=np.float32)
        self.n, self.both_orders, self.seed = len(a), both_orders, int(seed)
        self._epoch, self._order = None, None

    def __len__(self) -> int:
        return self.n * (2 if self.both_orders else 1)

    def set_epoch(self, epoch: int) -> None:
        if epoch != self._epoch:
            self._epoch, self._order = epoch, np.random.default_rng([self.seed, int(epoch)]).permutation(len(self))

    def __getitem__(self, i: int) -> tuple[list[int], list[int], float]:
        if self._epoch is None:
            self.set_epoch(0)
        j = int(self._order[i])
        k = j % self.n
        first, second = (self.a[k], self.b[k]) if j < self.n else (self.b[k], self.a[k])
        return first, second, float(self.labels[k])


def load_labelled_pairs(pairs: str, labels: list[str], weights: list[float] | None = None,
                        ) -> tuple[list[str], list[str], list[str], np.ndarray]:
    """The pairs' ids and texts, and the teachers' (weighted) mean score of each."""
    ids, a, b = read_pairs(pairs)
    if not ids:
        raise InputError(pairs, None, "at least one training pair", "an empty file")
    _, scores = mean_scores(labels, ids, weights)
    return ids, a, b, scores


def uniform_guess(labels: np.ndarray, loss: str, batch_size: int, seed: int) -> float:
    """The loss of a model that gives every example the same score (the labels' mean where the loss
    regresses), on these training labels."""
    from bicross.learning import bce_uniform, cosent_uniform, mse_uniform

    if loss == "cosent":
        return cosent_uniform(labels, batch_size, seed)
    return bce_uniform(labels) if loss == "bce" else mse_uniform(labels)


def log_labels(log, accelerator, data: ScoredPairs, labels: list[str], scores: np.ndarray) -> None:
    if accelerator.is_main_process:
        log.info("%d training pairs (%d examples), teacher scores from %s: mean %.3f, std %.3f", data.n, len(data),
                 ", ".join(labels), float(scores.mean()), float(scores.std()))
