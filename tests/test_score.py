"""The cross-encoder scorer, rerank, teacher scores and the exports, on a tiny random cross-encoder."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from conftest import write_scoring_files

from bicross import pipeline
from bicross.export import to_flagembedding
from bicross.schemas import CORPUS, QUERIES, write_table
from bicross.score import CrossEncoder


@pytest.fixture
def files(tmp_path):
    return write_scoring_files(tmp_path)


def test_length_sorted_scores_equal_one_by_one(tiny_cross, files):
    _, docs, queries = files
    cross = CrossEncoder(tiny_cross)
    qs = [queries["q0"]] * 5 + [queries["q1"]] * 5
    ds = [docs[f"d{i}"] for i in range(10)]
    cpu = torch.device("cpu")
    batched = cross.score(qs, ds, 32, 4, cpu, torch.float32)
    single = np.concatenate([cross.score([q], [d], 32, 1, cpu, torch.float32) for q, d in zip(qs, ds, strict=True)])
    np.testing.assert_allclose(batched, single, atol=1e-5)


def test_rerank_orders_by_cross_scores(tiny_cross, files):
    tmp, _, _ = files
    pipeline.rerank(tiny_cross, tmp / "run.parquet", tmp / "q.tok", tmp / "corpus.tok", tmp / "rr.parquet",
                    depth=5, max_length=32, precision="fp32")
    rr = pq.read_table(tmp / "rr.parquet").to_pylist()
    assert len(rr) == 4 * 5
    for q in ("q0", "q1", "q2", "q3"):
        rows = [r for r in rr if r["qid"] == q]
        assert [r["rank"] for r in rows] == [1, 2, 3, 4, 5]
        assert [r["score"] for r in rows] == sorted((r["score"] for r in rows), reverse=True)
        original = pq.read_table(tmp / "run.parquet").to_pylist()
        assert {r["docid"] for r in rows} == {r["docid"] for r in original if r["qid"] == q and r["rank"] <= 5}


def test_teacher_scores_candidates_and_every_positive(tiny_cross, files):
    tmp, _, _ = files
    pipeline.score_teacher(tiny_cross, tmp / "run.parquet", tmp / "qrels.parquet", tmp / "q.tok",
                           tmp / "corpus.tok", tmp / "teacher.parquet", depth=4, max_length=32, precision="fp32")
    teacher = pq.read_table(tmp / "teacher.parquet").to_pylist()
    assert {r["qid"] for r in teacher} == {"q0"}  # only queries with a positive
    pairs = {r["docid"] for r in teacher}
    assert pairs == {"d0", "d3", "d6", "d9", "d29"}  # top 4 + the positive the retriever missed
    assert all(np.isfinite(r["score"]) for r in teacher)


def test_flagembedding_export(tmp_path):
    write_table(pa.Table.from_pylist([{"qid": "q", "text": "what?"}], schema=QUERIES), tmp_path / "q.parquet")
    write_table(pa.Table.from_pylist([{"docid": d, "title": "", "text": f"text {d}"} for d in "abcd"],
                                     schema=CORPUS), tmp_path / "c.parquet")
    negatives = pa.table({"qid": ["q"], "positives": [["a"]], "negatives": [["b", "c", "d"]]})
    pq.write_table(negatives, tmp_path / "neg.parquet")
    teacher = pa.table({"qid": ["q"] * 3, "docid": ["a", "b", "d"], "score": pa.array([2.0, 0.5, -1.0], pa.float32())})
    pq.write_table(teacher, tmp_path / "t.parquet")
    to_flagembedding(tmp_path / "neg.parquet", tmp_path / "q.parquet", tmp_path / "c.parquet",
                     tmp_path / "out.jsonl", tmp_path / "t.parquet")
    record = json.loads((tmp_path / "out.jsonl").read_text())
    assert record == {"query": "what?", "pos": ["text a"], "neg": ["text b", "text d"],
                      "pos_scores": [2.0], "neg_scores": [0.5, -1.0]}
    to_flagembedding(tmp_path / "neg.parquet", tmp_path / "q.parquet", tmp_path / "c.parquet", tmp_path / "o2.jsonl")
    assert json.loads((tmp_path / "o2.jsonl").read_text())["neg"] == ["text b", "text c", "text d"]
