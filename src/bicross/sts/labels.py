"""Teacher scores -> training labels: averaging teachers, and the bi -> cross label transform."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bicross.errors import ConfigError, InputError

TRANSFORMS = ("clip", "minmax", "none")


def transform_labels(scores: np.ndarray, transform: str = "clip", sharpen: float = 0.0) -> np.ndarray:
    """Bi-encoder cosines (in [-1, 1]) -> cross-encoder labels.

    clip: to [0, 1] (Trans-Encoder's choice: a negative cosine means "unrelated"); minmax: rescale the
    observed range to [0, 1]; none: as is (for MSE). `sharpen` > 0 pushes labels away from 0.5 with
    sigmoid(s * (y - 0.5)), rescaled so 0 and 1 map to themselves.
    """
    y = np.asarray(scores, dtype=np.float64)
    if transform == "clip":
        y = np.clip(y, 0.0, 1.0)
    elif transform == "minmax":
        lo, hi = float(y.min()), float(y.max())
        y = (y - lo) / (hi - lo) if hi > lo else np.full_like(y, 0.5)
    elif transform != "none":
        raise ValueError(f"label transform must be one of {TRANSFORMS}, got {transform!r}")
    if sharpen > 0:
        def squash(v):
            return 1.0 / (1.0 + np.exp(-sharpen * (v - 0.5)))

        y = (squash(y) - squash(0.0)) / (squash(1.0) - squash(0.0))
    return y.astype(np.float32)


def family_weights(weights: Sequence[float] | None, families: int) -> list[float]:
    """Each model family's share of a label average (sts.mutual.cross_weights), normalised to sum to 1;
    None: equal shares (the paper's mutual average)."""
    if weights is None:
        return [1.0 / families] * families
    values = [float(w) for w in weights]
    if len(values) != families or min(values) < 0 or sum(values) <= 0:
        raise ConfigError(f"config sts.mutual.cross_weights: need {families} non-negative weights, not all 0, "
                          f"one per family (first, second); got {list(weights)}")
    return [w / sum(values) for w in values]


def mean_scores(paths: Sequence[str], pair_ids: pa.Array | None = None,
                weights: Sequence[float] | None = None) -> tuple[list[str], np.ndarray]:
    """Average the `score` of several teachers' PAIR_SCORES files (mutual distillation), per pair_id;
    with `weights` (one per file, summing to 1) a weighted average.

    Every file must score exactly the same pairs; the result follows the first file's order, or
    `pair_ids` when given.
    """
    if not paths:
        raise ValueError("no teacher scores given")
    if weights is None:
        weights = [1.0 / len(paths)] * len(paths)
    if len(weights) != len(paths) or min(weights) < 0 or abs(sum(weights) - 1.0) > 1e-6:
        raise ValueError(f"need {len(paths)} non-negative label weights summing to 1, got {list(weights)}")
    first = pq.read_table(paths[0], columns=["pair_id", "score"])
    ids = first.column("pair_id").to_pylist() if pair_ids is None else list(pair_ids)
    total = np.zeros(len(ids), dtype=np.float64)
    for path, weight in zip(paths, weights, strict=True):
        table = pq.read_table(path, columns=["pair_id", "score"])
        index = {p: i for i, p in enumerate(table.column("pair_id").to_pylist())}
        missing = [p for p in ids if p not in index]
        if missing or len(index) != len(ids):
            raise InputError(path, None, f"scores for exactly the {len(ids)} training pairs",
                             f"{len(index)} pairs, {len(missing)} missing (e.g. {missing[:3]})")
        scores = table.column("score").to_numpy()
        total += weight * scores[[index[p] for p in ids]]
    return ids, total.astype(np.float32)


def gold_labels(pairs_path: str, pairs_out: str, labels_out: str, scale: float = 5.0) -> int:
    """The supervised baseline's data: the labelled pairs of a split and their gold scores / `scale`.

    Only the `sts.supervised_baseline` rules call this; the Trans-Encoder loop never reads gold scores.
    """
    import pyarrow.compute as pc

    from bicross.schemas import PAIR_SCORES, PAIR_TEXTS, write_table

    table = pq.read_table(pairs_path)
    table = table.filter(pc.is_valid(table.column("gold")))
    if table.num_rows == 0:
        raise InputError(pairs_path, None, "labelled pairs for the supervised baseline", "none")
    write_table(table, pairs_out, PAIR_TEXTS)
    write_table(pa.table({"pair_id": table.column("pair_id"), "score": pc.divide(table.column("gold"), scale)}),
                labels_out, PAIR_SCORES)
    return table.num_rows
