"""Spearman and Pearson (x100) of predicted pair scores against gold; labelled pairs only."""

from __future__ import annotations

import logging

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bicross.errors import InputError

log = logging.getLogger("bicross.sts")


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties sharing their average rank (as scipy.stats.rankdata)."""
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    starts = np.flatnonzero(np.r_[True, sorted_x[1:] != sorted_x[:-1]])
    ends = np.r_[starts[1:], len(x)]
    average = (starts + ends + 1) / 2.0  # mean of the 1-based positions start+1 .. end
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = np.repeat(average, ends - starts)
    return ranks


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    x, y = x - x.mean(), y - y.mean()
    denom = np.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / denom) if denom > 0 else float("nan")


def correlations(predicted, gold) -> dict[str, float]:
    """spearman and pearson x100 over pairs whose gold score is known (NaN / None = unlabelled)."""
    p = np.asarray(predicted, dtype=np.float64)
    g = np.asarray([np.nan if v is None else v for v in gold], dtype=np.float64)
    keep = ~np.isnan(g)
    p, g = p[keep], g[keep]
    if len(g) < 2:
        raise ValueError(f"need at least 2 labelled pairs to correlate, got {len(g)}")
    return {"spearman": 100 * _pearson(_ranks(p), _ranks(g)), "pearson": 100 * _pearson(p, g),
            "num_pairs": float(len(g))}


def evaluate_scores(scores_path: str, pairs_path: str, out: str, *, iteration: int, encoder: str,
                    split: str, values_out: str | None = None) -> dict[str, float]:
    """Join a PAIR_SCORES file to the gold pairs by pair_id and write the metrics JSON, and (`values_out`)
    PAIR_VALUES: each labelled pair's score and gold, for the paired tests."""
    from bicross.evaluate import write_metrics_json
    from bicross.schemas import PAIR_VALUES, write_table

    scores = pq.read_table(scores_path, columns=["pair_id", "score"])
    gold = pq.read_table(pairs_path, columns=["pair_id", "gold"])
    gold = gold.filter(pc.is_valid(gold.column("gold")))  # unlabelled pairs are not scored for evaluation
    by_id = dict(zip(scores.column("pair_id").to_pylist(), scores.column("score").to_pylist(), strict=True))
    ids = gold.column("pair_id").to_pylist()
    missing = [p for p in ids if p not in by_id]
    if missing:
        raise InputError(scores_path, None, f"a score for every pair of {pairs_path}",
                         f"{len(missing)} missing (e.g. {missing[:3]})")
    metrics = correlations([by_id[p] for p in ids], gold.column("gold").to_pylist())
    log.info("iteration %d %s %s: spearman %.2f, pearson %.2f (%d labelled pairs)", iteration, encoder, split,
             metrics["spearman"], metrics["pearson"], metrics["num_pairs"])
    write_metrics_json(metrics, out, iteration, encoder, split)
    if values_out:
        write_table(pa.table({"pair_id": ids, "score": [by_id[p] for p in ids], "gold": gold.column("gold")}),
                    values_out, PAIR_VALUES)
    return metrics


def evaluate_splits(scores: list[str], pairs: list[str], outs: list[str], splits: list[str], *, iteration: int,
                    encoder: str, values_outs: list[str] | None = None) -> None:
    """evaluate_scores for several splits at once."""
    values_outs = values_outs or [None] * len(outs)
    for score_path, pairs_path, out, split, values_out in zip(scores, pairs, outs, splits, values_outs, strict=True):
        evaluate_scores(score_path, pairs_path, out, iteration=iteration, encoder=encoder, split=split,
                        values_out=values_out)
