"""Run evaluation with pytrec_eval: MRR@10, nDCG@10, Recall@100/1000 (where depth allows), MAP.

trec_eval's `recip_rank` has no cut-off, so MRR@10 is `recip_rank` on the run cut to its top 10:
the MS MARCO definition (1/rank of the first relevant document within 10, else 0).
"""

from __future__ import annotations

import json
from collections import defaultdict

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytrec_eval

from bicross.schemas import write_text_atomic


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


def _mean(per_query: dict[str, dict[str, float]], measure: str, qids: list[str]) -> float:
    # a judged query the run never answered counts as 0 (trec_eval -c), not as absent
    return float(np.mean([per_query.get(q, {}).get(measure, 0.0) for q in qids])) if qids else 0.0


def evaluate_run(run: pa.Table, qrels: pa.Table, relevance_level: int = 1) -> dict[str, float]:
    """Mean metrics over the queries that have judgments; Recall@k only where the run is k deep."""
    truth = qrels_dict(qrels)
    qids = sorted(truth)
    ranking = run_dict(run)
    depth = int(pc.max(run.column("rank")).as_py() or 0) if run.num_rows else 0
    measures = {"ndcg_cut.10", "map"}
    recall_cuts = [k for k in (100, 1000) if depth >= k]
    measures |= {f"recall.{k}" for k in recall_cuts}
    evaluator = pytrec_eval.RelevanceEvaluator(truth, measures, relevance_level=relevance_level)
    per_query = evaluator.evaluate(ranking)
    metrics = {"ndcg@10": _mean(per_query, "ndcg_cut_10", qids), "map": _mean(per_query, "map", qids)}
    for k in recall_cuts:
        metrics[f"recall@{k}"] = _mean(per_query, f"recall_{k}", qids)
    top10 = pytrec_eval.RelevanceEvaluator(truth, {"recip_rank"}, relevance_level=relevance_level)
    metrics["mrr@10"] = _mean(top10.evaluate(run_dict(run, max_rank=10)), "recip_rank", qids)
    metrics["num_queries"] = float(len(qids))
    return metrics


def write_metrics_json(metrics: dict[str, float], path, iteration: int, encoder: str, split: str) -> None:
    record = {"iteration": iteration, "encoder": encoder, "split": split, "metrics": metrics}
    write_text_atomic(json.dumps(record, indent=2, sort_keys=True) + "\n", path)
