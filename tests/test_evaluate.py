import pyarrow as pa
import pytest

from bicross.evaluate import evaluate_run
from bicross.schemas import QRELS, RUN


def run_of(rows):
    """rows: (qid, [docids in rank order]) -> a RUN table with descending scores."""
    out = []
    for qid, docids in rows:
        out += [{"qid": qid, "docid": d, "rank": r + 1, "score": float(100 - r)} for r, d in enumerate(docids)]
    return pa.Table.from_pylist(out, schema=RUN)


def qrels_of(rows):
    return pa.Table.from_pylist([{"qid": q, "docid": d, "relevance": r} for q, d, r in rows], schema=QRELS)


def test_mrr_at_10_is_the_ms_marco_definition():
    docs = [f"d{i}" for i in range(20)]
    run = run_of([
        ("a", docs),                       # first relevant at rank 3 -> 1/3
        ("b", docs),                       # first relevant at rank 11 -> 0 (beyond the cut-off)
        ("c", docs),                       # relevant at ranks 1 and 2 -> 1
        ("d", docs),                       # relevant at rank 10 -> 1/10
    ])
    qrels = qrels_of([("a", "d2", 1), ("a", "d7", 1), ("b", "d10", 1), ("c", "d0", 1), ("c", "d1", 2),
                      ("d", "d9", 1), ("d", "d3", 0)])
    metrics = evaluate_run(run, qrels)
    assert metrics["mrr@10"] == pytest.approx((1 / 3 + 0 + 1 + 1 / 10) / 4)
    assert metrics["num_queries"] == 4


def test_unanswered_judged_query_counts_as_zero():
    run = run_of([("a", ["d1", "d2"])])
    qrels = qrels_of([("a", "d1", 1), ("b", "d1", 1)])
    metrics = evaluate_run(run, qrels)
    assert metrics["mrr@10"] == pytest.approx(0.5)
    assert metrics["ndcg@10"] == pytest.approx(0.5)


def test_recall_only_where_depth_allows_and_relevance_level():
    docs = [f"d{i}" for i in range(100)]
    run = run_of([("a", docs)])
    qrels = qrels_of([("a", "d0", 1), ("a", "d50", 2), ("a", "x", 2)])
    metrics = evaluate_run(run, qrels)
    assert "recall@1000" not in metrics
    assert metrics["recall@100"] == pytest.approx(2 / 3)
    strict = evaluate_run(run, qrels, relevance_level=2)
    assert strict["recall@100"] == pytest.approx(1 / 2)
    assert strict["mrr@10"] == 0.0  # d0 (grade 1) no longer counts as relevant
