"""Is a change real? Paired tests over the same queries (retrieval) or sentence pairs (sts).

Retrieval: the per-query values of the headline metric of two rows (say bi-encoder 1 and bi-encoder 0 on
the same test queries) give differences d_i. The p-value is a two-sided paired randomisation test
(sign flip): under "no difference" each d_i is as likely to have either sign, so p is the share of sign
assignments whose |sum| is at least the observed |sum d_i| (all 2^n of them when 2^n <= `resamples`,
else `resamples` random ones with the observed one counted in, (hits + 1) / (resamples + 1)). The
interval is the 95% paired bootstrap (percentile) interval of mean(d): queries drawn with replacement.

STS: Spearman is not a mean over pairs, so both come from one paired bootstrap over pairs: each
resample draws pairs with replacement, and the difference of the two Spearman correlations (x100) on
it is recorded; the interval is its 2.5/97.5 percentiles, p the two-sided bootstrap p-value
(twice the smaller share of resampled differences at or below / at or above 0, at most 1).

Every draw comes from `np.random.default_rng([seed, stream])`, so a rerun prints the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CHUNK = 1000  # resamples per vectorised step (memory: CHUNK x n)
RANDOMISATION = "paired randomisation test (sign flip, two-sided); 95% paired bootstrap interval"
SPEARMAN_BOOTSTRAP = "paired bootstrap over pairs of the Spearman difference (two-sided p, 95% interval)"


@dataclass(frozen=True)
class Change:
    difference: float
    low: float
    high: float
    p: float
    test: str
    n: int

    def text(self) -> str:
        """e.g. `+0.0208 [+0.004, +0.038] p=0.020`; x100 correlations with two decimals: `+2.83 [-1.11, +6.79]`."""
        p = "p<0.001" if self.p < 0.001 else f"p={self.p:.3f}"  # Monte Carlo p is at least 1 / (resamples + 1)
        if max(abs(self.low), abs(self.high), abs(self.difference)) > 1:
            return f"{self.difference:+.2f} [{self.low:+.2f}, {self.high:+.2f}] {p}"
        return f"{self.difference:+.4f} [{self.low:+.3f}, {self.high:+.3f}] {p}"


def _chunks(total: int):
    for start in range(0, total, CHUNK):
        yield min(CHUNK, total - start)


def randomisation_p(d, resamples: int, seed: int) -> float:
    """Two-sided paired randomisation (sign-flip) p-value of mean(d) = 0 (see the module docstring)."""
    d = np.asarray(d, dtype=np.float64)
    n = len(d)
    if n == 0 or not np.any(d):
        return 1.0
    observed = abs(d.sum())
    at_least = observed - 1e-12 * np.abs(d).sum()  # sums equal up to rounding count as "at least"
    if n < 63 and 2 ** n <= resamples:  # every sign assignment: the exact p-value
        total, hits = 2 ** n, 0
        for start in range(0, total, CHUNK):
            codes = np.arange(start, min(start + CHUNK, total), dtype=np.int64)
            signs = ((codes[:, None] >> np.arange(n)) & 1) * 2 - 1
            hits += int((np.abs(signs @ d) >= at_least).sum())
        return hits / total
    rng = np.random.default_rng([seed, 0])
    hits = 0
    for size in _chunks(resamples):
        signs = rng.integers(0, 2, size=(size, n)) * 2 - 1
        hits += int((np.abs(signs @ d) >= at_least).sum())
    return (hits + 1) / (resamples + 1)


def _percentiles(values: np.ndarray, level: float) -> tuple[float, float]:
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap_interval(d, resamples: int, seed: int, level: float = 0.95) -> tuple[float, float]:
    """The `level` paired bootstrap (percentile) interval of mean(d), queries drawn with replacement."""
    d = np.asarray(d, dtype=np.float64)
    if len(d) == 0:
        return 0.0, 0.0
    rng = np.random.default_rng([seed, 1])
    means = np.concatenate([d[rng.integers(0, len(d), size=(size, len(d)))].mean(axis=1)
                            for size in _chunks(resamples)])
    return _percentiles(means, level)


def mean_change(a, b, resamples: int, seed: int) -> Change:
    """Row a against row b, values per query in the same order: mean(a - b), interval and p."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    low, high = bootstrap_interval(d, resamples, seed)
    return Change(float(d.mean()) if len(d) else 0.0, low, high, randomisation_p(d, resamples, seed),
                  RANDOMISATION, len(d))


def _resampled_ranks(x: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """Average ranks (ties share theirs, as sts.evaluate) of x[draws[r]] within each row r, without a sort
    per row: a drawn element's rank counts the draws of smaller values plus the mean position in its tie."""
    values, group = np.unique(x, return_inverse=True)  # group: which distinct value each element has
    rows = draws.shape[0]
    flat = (np.arange(rows)[:, None] * len(values) + group[draws]).ravel()
    counts = np.bincount(flat, minlength=rows * len(values)).reshape(rows, len(values)).astype(np.float64)
    average = np.cumsum(counts, axis=1) - (counts - 1) / 2  # 1-based average rank of each distinct value
    return np.take_along_axis(average, group[draws], axis=1)


def _row_pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    x = x - x.mean(axis=1, keepdims=True)
    y = y - y.mean(axis=1, keepdims=True)
    denom = np.sqrt((x * x).sum(axis=1) * (y * y).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (x * y).sum(axis=1) / denom, 0.0)


def spearman_change(a, b, gold, resamples: int, seed: int) -> Change:
    """Spearman x100 of scores `a` minus that of `b` against `gold` (one entry per pair, same order), with
    the paired bootstrap interval and p over pairs (see the module docstring)."""
    from bicross.sts.evaluate import correlations

    a, b, gold = (np.asarray(v, dtype=np.float64) for v in (a, b, gold))
    difference = correlations(a, gold)["spearman"] - correlations(b, gold)["spearman"]
    rng = np.random.default_rng([seed, 2])
    n, diffs = len(gold), []
    for size in _chunks(resamples):
        draws = rng.integers(0, n, size=(size, n))
        g = _resampled_ranks(gold, draws)
        diffs.append(100 * (_row_pearson(_resampled_ranks(a, draws), g) - _row_pearson(_resampled_ranks(b, draws), g)))
    values = np.concatenate(diffs)
    low, high = _percentiles(values, 0.95)
    p = min(1.0, 2 * min(float((values <= 0).mean()), float((values >= 0).mean())))
    return Change(float(difference), low, high, p, SPEARMAN_BOOTSTRAP, n)
