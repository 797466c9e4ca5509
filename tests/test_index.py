import numpy as np
import pytest

from bicross.index import embeddings_table, read_embeddings, run_table, search_shards
from bicross.schemas import write_table


def brute_force(queries, docs, k):
    scores = queries @ docs.T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, 1), order


@pytest.fixture
def vectors():
    rng = np.random.default_rng(0)
    docs = rng.normal(size=(503, 16)).astype(np.float32)
    queries = rng.normal(size=(37, 16)).astype(np.float32)
    return docs, queries


def write_shards(tmp_path, docs, shards):
    paths, bounds = [], np.linspace(0, len(docs), shards + 1).astype(int)
    for s in range(shards):
        ids = [f"d{i}" for i in range(bounds[s], bounds[s + 1])]
        path = tmp_path / f"shard-{s}.parquet"
        write_table(embeddings_table(ids, docs[bounds[s]:bounds[s + 1]]), path)
        paths.append(path)
    return paths


def test_embeddings_roundtrip(tmp_path, vectors):
    docs, _ = vectors
    write_table(embeddings_table([str(i) for i in range(len(docs))], docs), tmp_path / "e.parquet")
    ids, back = read_embeddings(tmp_path / "e.parquet")
    assert ids[:3] == ["0", "1", "2"]
    np.testing.assert_array_equal(back, docs)


@pytest.mark.parametrize("shards", [1, 3, 7])
def test_faiss_equals_brute_force_and_sharding_changes_nothing(tmp_path, vectors, shards):
    docs, queries = vectors
    scores, docids = search_shards(queries, write_shards(tmp_path, docs, shards), depth=20)
    want_scores, want_idx = brute_force(queries, docs, 20)
    np.testing.assert_allclose(scores, want_scores, rtol=1e-5, atol=1e-5)
    assert (docids == np.array([[f"d{i}" for i in row] for row in want_idx], dtype=object)).all()


def test_depth_larger_than_a_shard(tmp_path, vectors):
    docs, queries = vectors
    scores, docids = search_shards(queries, write_shards(tmp_path, docs[:30], 6), depth=25)
    want_scores, _ = brute_force(queries, docs[:30], 25)
    np.testing.assert_allclose(scores, want_scores, rtol=1e-5, atol=1e-5)


def test_run_table_ranks():
    table = run_table(["a", "b"], np.array([[3.0, 2.0], [5.0, 1.0]]), np.array([["x", "y"], ["z", "x"]]))
    assert table.column("rank").to_pylist() == [1, 2, 1, 2]
    assert table.column("qid").to_pylist() == ["a", "a", "b", "b"]
    assert table.column("docid").to_pylist() == ["x", "y", "z", "x"]
