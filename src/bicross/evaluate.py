"""Run evaluation with pytrec_eval: MRR@10, nDCG@10, Recall@100/1000 (where depth allows), MAP.

trec_eval's `recip_rank` has no cut-off, so MRR@10 is `recip_rank` on the run cut to its top 10:
the MS MARCO definition (1/rank of the first relevant document within 10, else 0).
"""

from __future__ import annotations

import json
import os
from collections import defaultdict

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytrec_eval

from bicross.schemas import QUERY_VALUES, write_table, write_text_atomic


def qrels_dict(qrels: pa.Table) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = defaultdict(dict)
    for qid, docid, rel in zip(*(qrels.column(c).to_pylist() for c in ("qid", "docid", "relevance")),
                               strict=True):
        out[qid][docid] = int(rel)
    return dict(out)


def run_dict(run: pa.Table, max_rank: int | None = None) -> dict[str, dict[str, float]]:
    if max_rank is not None:
        run = run.filter(pc.less_equal(run.column("rank"), max_rank))
    out: dict[str, dict[str, float]] = defaultdict(dict)
    for qid, docid, score in zip(*(run.column(c).to_pylist() for c in ("qid", "docid", "score")),
                                 strict=True):
        out[qid][docid] = float(score)
    return dict(out)


def _values(per_query: dict[str, dict[str, float]], measure: str, qids: list[str]) -> np.ndarray:
    # a judged query the run never answered counts as 0 (trec_eval -c), not as absent
    return np.array([per_query.get(q, {}).get(measure, 0.0) for q in qids], dtype=np.float64)


def per_query_values(run: pa.Table, qrels: pa.Table, relevance_level: int = 1) -> tuple[list[str], dict[str, np.ndarray]]:
    """Every judged query (sorted) and each metric's value on it; Recall@k only where the run is k deep."""
    truth = qrels_dict(qrels)
    qids = sorted(truth)
    ranking = run_dict(run)
    depth = int(pc.max(run.column("rank")).as_py() or 0) if run.num_rows else 0
    measures = {"ndcg_cut.10", "map"}
    recall_cuts = [k for k in (100, 1000) if depth >= k]
    measures |= {f"recall.{k}" for k in recall_cuts}
    evaluator = pytrec_eval.RelevanceEvaluator(truth, measures, relevance_level=relevance_level)
    per_query = evaluator.evaluate(ranking)
    values = {"ndcg@10": _values(per_query, "ndcg_cut_10", qids), "map": _values(per_query, "map", qids)}
    for k in recall_cuts:
        values[f"recall@{k}"] = _values(per_query, f"recall_{k}", qids)
    top10 = pytrec_eval.RelevanceEvaluator(truth, {"recip_rank"}, relevance_level=relevance_level)
    values["mrr@10"] = _values(top10.evaluate(run_dict(run, max_rank=10)), "recip_rank", qids)
    return qids, values


def means(qids: list[str], values: dict[str, np.ndarray]) -> dict[str, float]:
    """The metrics of a run: each per-query metric's mean over the judged queries, and their number."""
    metrics = {name: float(v.mean()) if qids else 0.0 for name, v in values.items()}
    metrics["num_queries"] = float(len(qids))
    return metrics


def evaluate_run(run: pa.Table, qrels: pa.Table, relevance_level: int = 1) -> dict[str, float]:
    """Mean metrics over the queries that have judgments; Recall@k only where the run is k deep."""
    return means(*per_query_values(run, qrels, relevance_level))


def values_path(metrics_path) -> str:
    """Where the per-query (sts: per-pair) values behind a metrics JSON are: beside it, `.values.parquet`."""
    path = os.fspath(metrics_path)
    return (path[:-len(".json")] if path.endswith(".json") else path) + ".values.parquet"


def write_query_values(qids: list[str], values: dict[str, np.ndarray], path) -> None:
    """QUERY_VALUES (qid, metric, value): one row per judged query and metric, for paired tests."""
    names = sorted(values)
    write_table(pa.table({"qid": [q for _ in names for q in qids],
                          "metric": [name for name in names for _ in qids],
                          "value": np.concatenate([values[name] for name in names]) if names else []}),
                path, QUERY_VALUES)


def write_metrics_json(metrics: dict[str, float], path, iteration: int, encoder: str, split: str) -> None:
    record = {"iteration": iteration, "encoder": encoder, "split": split, "metrics": metrics}
    write_text_atomic(json.dumps(record, indent=2, sort_keys=True) + "\n", path)
