"""Hard-negative mining: positives excluded, rank window respected, seeded and chunk-independent, top-up."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bicross import mining, schemas
from bicross.errors import InputError
from bicross.mining import mine_negatives

DEPTH = 20


def write_inputs(root: Path, *, num_docs: int = 300, run: dict[str, list[str]] | None = None,
                 qrels: list[tuple[str, str, int]] | None = None, row_group: int | None = None):
    """Corpus d0..d{num_docs-1}; `run` maps qid -> docids in rank order; qrels rows (qid, docid, rel)."""
    corpus = [f"d{i}" for i in range(num_docs)]
    schemas.write_table(pa.table({"docid": corpus, "title": [""] * num_docs, "text": ["x"] * num_docs}),
                        root / "corpus.parquet", schemas.CORPUS)
    rows = [(q, d, r + 1, 1.0 - r / 100) for q, docs in run.items() for r, d in enumerate(docs)]
    table = pa.table({"qid": [r[0] for r in rows], "docid": [r[1] for r in rows],
                      "rank": [r[2] for r in rows], "score": [r[3] for r in rows]})
    table = table.cast(schemas.RUN)
    pq.write_table(table, root / "run.parquet", row_group_size=row_group)
    schemas.write_table(pa.table({"qid": [r[0] for r in qrels], "docid": [r[1] for r in qrels],
                                  "relevance": [r[2] for r in qrels]}), root / "qrels.parquet", schemas.QRELS)
    return root / "run.parquet", root / "qrels.parquet", root / "corpus.parquet"


def standard_inputs(root: Path, num_queries: int = 30, row_group: int | None = None):
    """Each query: DEPTH distinct candidates; 1-3 positives, some of them ranked inside the run."""
    rng = np.random.default_rng(0)
    run, qrels = {}, []
    for i in range(num_queries):
        docs = [f"d{j}" for j in rng.choice(300, size=DEPTH, replace=False)]
        qid = f"q{i:03d}"
        run[qid] = docs
        positives = {docs[0], docs[int(rng.integers(3, DEPTH))], f"d{int(rng.integers(300))}"}
        for d in sorted(positives)[: 1 + i % 3]:
            qrels.append((qid, d, 1 + i % 2))
        qrels.append((qid, docs[1], 0))  # judged non-relevant: not a positive, may be a negative
    return write_inputs(root, run=run, qrels=qrels, row_group=row_group)


def mine(paths, out, **kwargs):
    args = {"rank_start": 3, "rank_end": 15, "negatives_per_query": 5, "seed": 13}
    args.update(kwargs)
    return mine_negatives(*paths, out, **args)


def as_dict(path) -> dict[str, tuple[list[str], list[str]]]:
    table = pq.read_table(path)
    return {q: (p, n) for q, p, n in zip(*(table.column(c).to_pylist() for c in table.column_names),
                                         strict=True)}


def qrels_positives(paths) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for row in pq.read_table(paths[1]).to_pylist():
        if row["relevance"] > 0:
            out.setdefault(row["qid"], set()).add(row["docid"])
    return out


def test_positives_excluded_and_rank_window(tmp_path):
    paths = standard_inputs(tmp_path)
    counts = mine(paths, tmp_path / "neg.parquet")
    got = as_dict(tmp_path / "neg.parquet")
    positives = qrels_positives(paths)
    run = pq.read_table(paths[0]).to_pylist()
    rank = {(r["qid"], r["docid"]): r["rank"] for r in run}
    assert counts["queries"] == len(got) == 30 and counts["topped_up"] == 0
    assert any(len(p) > 1 for p in positives.values())
    assert any(3 <= rank.get((q, d), 0) <= 15 for q, ps in positives.items() for d in ps)  # exercised
    for qid, (pos, neg) in got.items():
        assert pos == sorted(positives[qid])
        assert len(neg) == 5 and len(set(neg)) == 5
        assert not set(neg) & set(pos)
        assert all(3 <= rank[(qid, d)] <= 15 for d in neg)
        assert [rank[(qid, d)] for d in neg] == sorted(rank[(qid, d)] for d in neg)  # run order
    # nearly all candidates taken: a positive would be hit if it were not excluded
    mine(paths, tmp_path / "all.parquet", rank_start=1, rank_end=DEPTH, negatives_per_query=DEPTH - 3)
    for qid, (pos, neg) in as_dict(tmp_path / "all.parquet").items():
        assert len(set(neg)) == DEPTH - 3 and not set(neg) & set(pos)
        assert all((qid, d) in rank for d in neg)


def test_schema_and_order(tmp_path):
    paths = standard_inputs(tmp_path)
    mine(paths, tmp_path / "neg.parquet")
    table = pq.read_table(tmp_path / "neg.parquet")
    assert table.schema.equals(schemas.NEGATIVES)
    assert table.column("qid").to_pylist() == list(dict.fromkeys(pq.read_table(paths[0]).column("qid").to_pylist()))


def test_seeded_and_chunk_independent(tmp_path, monkeypatch):
    # tiny reader batches and output row groups: queries straddle batches, the file has several groups
    monkeypatch.setattr(mining, "RUN_BATCH_ROWS", 7)
    monkeypatch.setattr(mining, "ROW_GROUP_QUERIES", 6)
    paths = standard_inputs(tmp_path, num_queries=40, row_group=11)
    mine(paths, tmp_path / "a.parquet")
    mine(paths, tmp_path / "b.parquet")
    mine(paths, tmp_path / "c.parquet", chunk_queries=3)
    mine(paths, tmp_path / "d.parquet", chunk_queries=1)
    mine(paths, tmp_path / "e.parquet", seed=14)
    a = (tmp_path / "a.parquet").read_bytes()
    assert a == (tmp_path / "b.parquet").read_bytes()
    assert a == (tmp_path / "c.parquet").read_bytes() == (tmp_path / "d.parquet").read_bytes()
    assert pq.read_table(tmp_path / "a.parquet").equals(pq.read_table(tmp_path / "c.parquet"))
    assert pq.ParquetFile(tmp_path / "a.parquet").metadata.num_row_groups == 7
    first, other = as_dict(tmp_path / "a.parquet"), as_dict(tmp_path / "e.parquet")
    assert first.keys() == other.keys()
    assert sum(first[q][1] != other[q][1] for q in first) > len(first) // 2


def test_query_negatives_do_not_depend_on_other_queries(tmp_path):
    (tmp_path / "all").mkdir()
    paths = standard_inputs(tmp_path / "all", num_queries=20)
    full = pq.read_table(paths[0])
    keep = [f"q{i:03d}" for i in range(5, 12)]
    sub = tmp_path / "sub"
    sub.mkdir()
    pq.write_table(full.filter(pa.compute.is_in(full.column("qid"), pa.array(keep))), sub / "run.parquet")
    mine(paths, tmp_path / "full.parquet")
    mine((sub / "run.parquet", paths[1], paths[2]), tmp_path / "sub.parquet")
    got_full, got_sub = as_dict(tmp_path / "full.parquet"), as_dict(tmp_path / "sub.parquet")
    for qid in keep:
        assert got_sub[qid] == got_full[qid]


def test_top_up_missing_and_no_positives(tmp_path, caplog):
    run = {
        "q0": [f"d{i}" for i in range(DEPTH)],               # enough candidates
        "q1": ["d0", "d1", "d2", "d3", "d4", "d5"],           # window 3..15 holds d2..d5, d3 a positive
        "q2": [f"d{i}" for i in range(10, 10 + DEPTH)],       # no positive in qrels: left out
    }
    qrels = [("q0", "d5", 1), ("q1", "d3", 1), ("q1", "d50", 2), ("q1", "d4", 0), ("q2", "d11", 0),
             ("q3", "d7", 1), ("q3", "d8", 1)]              # q3: not in the run
    paths = write_inputs(tmp_path, num_docs=60, run=run, qrels=qrels)
    caplog.set_level(logging.INFO, logger="bicross.mining")
    counts = mine(paths, tmp_path / "neg.parquet", negatives_per_query=8)
    got = as_dict(tmp_path / "neg.parquet")
    assert list(got) == ["q0", "q1", "q3"]
    assert counts == {"queries": 3, "no_positives": 1, "topped_up": 1, "missing_from_run": 1, "short": 0,
                      "negatives": 24}
    pos, neg = got["q1"]
    assert pos == ["d3", "d50"]
    assert neg[:3] == ["d2", "d4", "d5"]  # every window candidate that is not a positive, in run order
    assert len(neg) == 8 and len(set(neg)) == 8 and not set(neg) & {"d3", "d50"}
    assert all(d.startswith("d") and int(d[1:]) < 60 for d in neg)
    pos, neg = got["q3"]
    assert pos == ["d7", "d8"] and len(set(neg)) == 8 and not set(neg) & {"d7", "d8"}
    message = " ".join(r.getMessage() for r in caplog.records if r.name == "bicross.mining")
    assert "1 topped up" in message and "1 missing from the run" in message
    assert "1 left out without a positive" in message


def test_tiny_corpus_short(tmp_path):
    paths = write_inputs(tmp_path, num_docs=6, run={"q0": ["d0", "d1", "d2"]}, qrels=[("q0", "d1", 1)])
    counts = mine(paths, tmp_path / "neg.parquet", rank_start=1, negatives_per_query=10)
    pos, neg = as_dict(tmp_path / "neg.parquet")["q0"]
    assert counts["short"] == 1 and counts["topped_up"] == 1
    assert neg[:2] == ["d0", "d2"] and sorted(neg) == ["d0", "d2", "d3", "d4", "d5"]


def test_bad_arguments_and_input(tmp_path):
    paths = standard_inputs(tmp_path, num_queries=3)
    with pytest.raises(ValueError, match="rank_start"):
        mine(paths, tmp_path / "neg.parquet", rank_start=0)
    with pytest.raises(ValueError, match="rank_end"):
        mine(paths, tmp_path / "neg.parquet", rank_start=5, rank_end=4)
    (tmp_path / "bad").mkdir()
    bad = write_inputs(tmp_path / "bad", num_docs=10, run={"q0": ["d1", "d2", "zz9"]}, qrels=[("q0", "d1", 1)])
    with pytest.raises(InputError, match="zz9"):
        mine(bad, tmp_path / "bad.parquet", rank_start=1)
    assert not (tmp_path / "bad.parquet").exists()  # nothing half-written
    assert not list((tmp_path).glob(".bad.parquet.*"))


def test_non_contiguous_run_is_an_error(tmp_path):
    paths = write_inputs(tmp_path, num_docs=10, run={"q0": ["d1"], "q1": ["d2"]}, qrels=[("q0", "d1", 1)])
    table = pq.read_table(paths[0])
    pq.write_table(pa.concat_tables([table, table.slice(0, 1)]), paths[0])
    with pytest.raises(InputError, match="q0"):
        mine(paths, tmp_path / "neg.parquet", rank_start=1)


def test_scifact_sized_is_fast(tmp_path):
    rng = np.random.default_rng(1)
    run = {f"q{i}": [f"d{j}" for j in rng.choice(5000, size=100, replace=False)] for i in range(809)}
    qrels = [(q, docs[int(rng.integers(0, 20))], 1) for q, docs in run.items()]
    paths = write_inputs(tmp_path, num_docs=5000, run=run, qrels=qrels)
    start = time.perf_counter()
    counts = mine(paths, tmp_path / "neg.parquet", rank_start=1, rank_end=100, negatives_per_query=30)
    assert counts["queries"] == 809
    assert time.perf_counter() - start < 2.0


def test_drop_false_negatives_by_hand():
    from bicross.mining import drop_false_negatives

    candidates = ["a", "b", "c", "d", "e"]
    scores = np.array([0.95, 0.5, 0.85, 0.2, 0.88], dtype=np.float32)
    # max_score 0.9 drops a; (1 - 0.05) x 0.9 = 0.855 drops e as well (c at 0.85 stays)
    assert drop_false_negatives(candidates, scores, 0.9, 0.9, 0.05) == (["b", "c", "d"], 1, 1)
    assert drop_false_negatives(candidates, scores, None, 0.9, 0.05) == (["b", "c", "d", "e"], 1, 0)
    assert drop_false_negatives(candidates, scores, 0.9, None, 0.05) == (["b", "c", "d"], 0, 2)
    assert drop_false_negatives(candidates, scores, 0.9, None, None) == (candidates, 0, 0)


def test_denoised_mining_drops_in_order_and_counts(tmp_path, caplog):
    """Cross-encoder logits: d2 is above max_score, d4 within the margin of the positive; both leave the
    window, the rest keep their run order, and the top-up never brings them back."""
    from bicross.mining import MiningFilter

    run = {"q1": [f"d{i}" for i in range(1, 9)], "q2": ["d1", "d3", "d5"]}
    paths = write_inputs(tmp_path, num_docs=12, run=run, qrels=[("q1", "d9", 1), ("q2", "d0", 1)])
    logits = {("q1", "d9"): 3.0, ("q1", "d2"): 5.0, ("q1", "d4"): 2.5}  # sigmoid: 0.953, 0.993, 0.924
    rows = [(q, d, logits.get((q, d), 0.0)) for q, docs in run.items() for d in docs] + [("q1", "d9", 3.0)]
    teacher = tmp_path / "teacher.parquet"
    schemas.write_table(pa.table({"qid": [r[0] for r in rows], "docid": [r[1] for r in rows],
                                  "score": [r[2] for r in rows]}), teacher, schemas.TEACHER)
    denoise = MiningFilter(teacher, max_score=0.99, relative_margin=0.05, sigmoid=True)  # 0.905 near the positive
    counts = mine(paths, tmp_path / "neg.parquet", rank_start=1, rank_end=8, negatives_per_query=7, seed=1,
                  denoise=denoise)
    negatives = as_dict(tmp_path / "neg.parquet")
    assert negatives["q1"][1][:6] == ["d1", "d3", "d5", "d6", "d7", "d8"]
    assert negatives["q1"][1][6] in {"d0", "d10", "d11"}  # topped up: not d2/d4 (dropped), not d9 (positive)
    assert {k: counts[k] for k in ("candidates", "dropped_max_score", "dropped_margin", "filtered_queries",
                                    "topped_up", "topped_up_by_filter", "no_positive_score")} == {
        "candidates": 11, "dropped_max_score": 1, "dropped_margin": 1, "filtered_queries": 1, "topped_up": 2,
        "topped_up_by_filter": 1, "no_positive_score": 1}  # q2's positive d0 has no teacher score
    plain = mine(paths, tmp_path / "plain.parquet", rank_start=1, rank_end=8, negatives_per_query=8, seed=1)
    assert "dropped_margin" not in plain and as_dict(tmp_path / "plain.parquet")["q1"][1] == run["q1"]  # d2, d4 too
    schemas.write_table(pa.table({"qid": ["q1"], "docid": ["d1"], "score": [0.0]}), teacher, schemas.TEACHER)
    schemas.write_table(pa.table({"qid": [r[0] for r in rows], "docid": [r[1] for r in rows],
                                  "score": [9.0] * len(rows)}), teacher, schemas.TEACHER)
    with caplog.at_level(logging.WARNING, logger="bicross.mining"):  # a teacher that separates nothing
        mine(paths, tmp_path / "all.parquet", rank_start=1, rank_end=8, negatives_per_query=7, seed=1, denoise=denoise)
    assert "dropped 11 of 11 window candidates" in caplog.text
    schemas.write_table(pa.table({"qid": ["q1"], "docid": ["d1"], "score": [0.0]}), teacher, schemas.TEACHER)
    with pytest.raises(InputError, match="a teacher score for every candidate"):
        mine(paths, tmp_path / "bad.parquet", rank_start=1, rank_end=8, negatives_per_query=7, seed=1,
             denoise=MiningFilter(teacher, max_score=0.5))
