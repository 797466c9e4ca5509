"""Stages run in parts (bicross.parts): each part's output, merged, equals the one-job output."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import write_scoring_files

from bicross import pipeline
from bicross.index import IndexSettings, embeddings_table
from bicross.parts import group_rows, merge_parts, row_blocks
from bicross.schemas import QRELS, RUN, write_table


def in_parts(tmp_path, name, parts, stage):
    """Run `stage(out, part, parts)` for every part and merge the parts; the merged file."""
    paths = []
    for part in range(parts):
        paths.append(tmp_path / f"{name}-{parts}" / f"{part}.parquet")
        stage(paths[-1], part, parts)
    merge_parts(paths, tmp_path / f"{name}-{parts}.parquet")
    return pq.read_table(tmp_path / f"{name}-{parts}.parquet")


@pytest.fixture
def embeddings(tmp_path):
    rng = np.random.default_rng(0)
    docs, queries = rng.normal(size=(203, 16)).astype(np.float32), rng.normal(size=(37, 16)).astype(np.float32)
    shards = []
    for s, rows in enumerate(np.array_split(np.arange(len(docs)), 3)):
        shards.append(str(tmp_path / f"shard-{s}.parquet"))
        write_table(embeddings_table([f"d{i}" for i in rows], docs[rows]), shards[-1])
    write_table(embeddings_table([f"q{i}" for i in range(len(queries))], queries, "qid"), tmp_path / "q.parquet")
    return tmp_path / "q.parquet", shards


@pytest.mark.parametrize("index", ["flat", "hnsw"])
def test_retrieval_in_parts_equals_one_job(tmp_path, embeddings, index):
    queries, shards = embeddings
    settings = IndexSettings(index=index)
    search = settings.search_params()

    def stage(out, part, parts, block=1000):
        pipeline.retrieve(str(queries), shards, 15, str(out), search=search, part=part, parts=parts, block=block)

    stage(tmp_path / "one.parquet", 0, 1)
    one = pq.read_table(tmp_path / "one.parquet")
    assert one.num_rows == 37 * 15 and one.schema.equals(RUN)
    for parts in (2, 3, 8, 50):  # 50: more parts than queries, so some parts hold none
        assert in_parts(tmp_path, "run", parts, stage).equals(one), parts
    # a few queries at a time (the memory bound): the same run
    stage(tmp_path / "blocks.parquet", 0, 1, block=4)
    assert pq.read_table(tmp_path / "blocks.parquet").equals(one)


def test_an_empty_part_is_a_valid_empty_run(tmp_path, embeddings):
    queries, shards = embeddings
    pipeline.retrieve(str(queries), shards, 5, str(tmp_path / "empty.parquet"), part=0, parts=40)
    empty = pq.read_table(tmp_path / "empty.parquet")
    assert empty.num_rows == 0 and empty.schema.equals(RUN)


def test_row_blocks_cover_a_slice_across_row_groups(tmp_path):
    table = pa.table({"x": list(range(100))})
    pq.write_table(table, tmp_path / "t.parquet", row_group_size=7)
    for rows, block in ((slice(0, 100), 9), (slice(13, 58), 5), (slice(40, 41), 3), (slice(60, 60), 4)):
        got = list(row_blocks(tmp_path / "t.parquet", rows, block))
        assert all(0 < b.num_rows <= block for b in got)
        assert [v for b in got for v in b.column("x").to_pylist()] == list(range(100))[rows]


def test_group_rows_keeps_every_row_of_a_value_together():
    table = pa.table({"qid": ["b", "a", "c", "a", "d", "b"], "n": [0, 1, 2, 3, 4, 5]})
    parts = [group_rows(table, "qid", p, 3).column("qid").to_pylist() for p in range(3)]
    assert parts == [["a", "a"], ["b", "b"], ["c", "d"]]
    assert group_rows(table, "qid", 0, 1).equals(table)
    with pytest.raises(ValueError, match="outside 0..2"):
        group_rows(table, "qid", 3, 3)


def test_merging_parts_of_another_schema_names_the_file(tmp_path):
    write_table(pa.table({"qid": ["q"], "docid": ["d"], "rank": [1], "score": [1.0]}), tmp_path / "0.parquet", RUN)
    pq.write_table(pa.table({"qid": ["q"]}), tmp_path / "1.parquet")
    with pytest.raises(ValueError, match="1.parquet: schema"):
        merge_parts([tmp_path / "0.parquet", tmp_path / "1.parquet"], tmp_path / "merged.parquet")
    assert not (tmp_path / "merged.parquet").exists()


@pytest.fixture
def scoring(tmp_path):
    root, _, queries = write_scoring_files(tmp_path, num_queries=7)
    qrels = [{"qid": q, "docid": f"d{(5 * i) % 30}", "relevance": 1} for i, q in enumerate(queries) if i != 1]
    write_table(pa.Table.from_pylist(qrels, schema=QRELS), root / "qrels.parquet")
    return root


def assert_same_scores(got: pa.Table, want: pa.Table):
    """The same rows in the same order; scores to float rounding (batches of other pairs pad differently)."""
    assert got.schema.equals(want.schema)
    assert got.drop_columns(["score"]).equals(want.drop_columns(["score"]))
    np.testing.assert_allclose(got.column("score").to_numpy(), want.column("score").to_numpy(), atol=1e-5)


def test_reranking_in_parts_equals_one_job(tiny_cross, scoring):
    def stage(out, part, parts):
        pipeline.rerank(tiny_cross, scoring / "run.parquet", scoring / "q.tok", scoring / "corpus.tok", out,
                        depth=6, max_length=32, precision="fp32", part=part, parts=parts)

    stage(scoring / "one.parquet", 0, 1)
    one = pq.read_table(scoring / "one.parquet")
    assert one.num_rows == 7 * 6
    for parts in (2, 3, 9):
        assert_same_scores(in_parts(scoring, "rerank", parts, stage), one)


def test_teacher_scores_in_parts_equal_one_job(tiny_cross, scoring):
    def stage(out, part, parts):
        pipeline.score_teacher(tiny_cross, scoring / "run.parquet", scoring / "qrels.parquet", scoring / "q.tok",
                               scoring / "corpus.tok", out, depth=4, max_length=32, precision="fp32", part=part,
                               parts=parts)

    stage(scoring / "one.parquet", 0, 1)
    one = pq.read_table(scoring / "one.parquet")
    assert set(one.column("qid").to_pylist()) == {f"q{i}" for i in range(7)} - {"q1"}
    for parts in (2, 4, 8):
        assert_same_scores(in_parts(scoring, "teacher", parts, stage), one)


@pytest.mark.parametrize("kind", ["bi", "cross"])
def test_sts_pair_scores_in_parts_equal_one_job(tmp_path, tiny_model, tiny_cross, kind):
    from bicross.schemas import PAIRS
    from bicross.sts.score import score_pairs

    rng = np.random.default_rng(1)
    words = ["a cat", "the dog runs", "two men play chess", "rain", "a red car on the road", "music"]
    pairs = [{"pair_id": f"p{i}", "text_a": str(rng.choice(words)), "text_b": str(rng.choice(words)),
              "gold": float(i % 5)} for i in range(23)]
    write_table(pa.Table.from_pylist(pairs, schema=PAIRS), tmp_path / "pairs.parquet")
    model = str(tiny_model) if kind == "bi" else tiny_cross

    def stage(out, part, parts):
        score_pairs(kind, model, [str(tmp_path / "pairs.parquet")], [str(out)], max_length=16, precision="fp32",
                    part=part, parts=parts)

    stage(tmp_path / "one.parquet", 0, 1)
    one = pq.read_table(tmp_path / "one.parquet")
    assert one.num_rows == 23
    for parts in (2, 5, 30):
        assert_same_scores(in_parts(tmp_path, f"scores-{kind}", parts, stage), one)
