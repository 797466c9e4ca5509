from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pytest

from bicross import pipeline
from bicross.index import IndexSettings, embeddings_table, read_embeddings, run_table, search_shards
from bicross.schemas import write_table

REPO = Path(__file__).resolve().parents[1]


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


@pytest.mark.parametrize("shards", [1, 3, 7, 64])
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


# --- approximate indexes (ivf, hnsw) ---------------------------------------------------------------

def clustered(n, dim, seed, centres=40):
    """Normalised vectors around random centres: the structure real embeddings have (and ANN relies on)."""
    rng = np.random.default_rng(seed)
    middle = rng.normal(size=(centres, dim))
    x = middle[rng.integers(0, centres, n)] + 0.6 * rng.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def overlap(got, want):
    """Mean fraction of each row of `want` found in the same row of `got` (recall@k against exact)."""
    return float(np.mean([len(set(g) & set(w)) / len(w) for g, w in zip(got, want, strict=True)]))


@pytest.mark.parametrize("settings", [IndexSettings(index="ivf", nlist=32, nprobe=16),
                                      IndexSettings(index="hnsw", m=32, ef_construction=200, ef_search=256)],
                         ids=["ivf", "hnsw"])
@pytest.mark.parametrize("shards", [1, 4])
def test_approximate_recall_against_flat(tmp_path, settings, shards):
    docs, queries = clustered(4000, 32, 1), clustered(100, 32, 2)
    paths = write_shards(tmp_path, docs, shards)
    _, exact = search_shards(queries, paths, depth=100)
    _, approx = search_shards(queries, paths, depth=100, settings=settings)
    assert overlap(approx[:, :10], exact[:, :10]) >= 0.95
    assert overlap(approx, exact) >= 0.9


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_saved_indexes_equal_indexes_built_at_search_time(tmp_path, kind):
    docs, queries = clustered(1500, 16, 3), clustered(20, 16, 4)
    paths = write_shards(tmp_path, docs, 3)
    settings = IndexSettings(index=kind, nprobe=4, ef_search=40)
    index_paths = []
    for s, path in enumerate(paths):
        index_paths.append(tmp_path / f"shard-{s}.faiss")
        pipeline.build_index(path, index_paths[-1], settings.build_params(), threads=1)
    scores, docids = search_shards(queries, paths, 30, settings, index_paths)
    want_scores, want_ids = search_shards(queries, paths, 30, settings)
    np.testing.assert_allclose(scores, want_scores, rtol=1e-5, atol=1e-5)
    assert overlap(docids, want_ids) >= 0.99  # hnsw construction order may differ between runs
    with pytest.raises(ValueError, match="index files for"):
        search_shards(queries, paths, 30, settings, index_paths[:2])


def test_ivf_lists_and_missing_results(tmp_path):
    assert IndexSettings(index="ivf").lists_for(138_154) == 1487  # an MS MARCO shard of 64
    assert IndexSettings(index="ivf").lists_for(1000) == 25  # at least 39 vectors per list
    assert IndexSettings(index="ivf", nlist=500).lists_for(100) == 100
    assert IndexSettings(index="ivf").lists_for(10) == 1
    # one list probed of many: fewer than `depth` found; the run holds what was found, ranks from 1
    docs, queries = clustered(400, 16, 5), clustered(5, 16, 6)
    scores, docids = search_shards(queries, write_shards(tmp_path, docs, 2), 150,
                                   IndexSettings(index="ivf", nlist=8, nprobe=1))
    assert np.isneginf(scores).any() and (docids == None).any()  # noqa: E711
    table = run_table([f"q{i}" for i in range(5)], scores, docids)
    assert table.num_rows == int(np.not_equal(docids, None).sum())
    assert None not in table.column("docid").to_pylist()
    for q in range(5):
        ranks = table.filter(pc.equal(table.column("qid"), f"q{q}")).column("rank").to_pylist()
        assert ranks == list(range(1, len(ranks) + 1))


def test_settings_follow_the_config_schema():
    """IndexSettings' defaults are the schema's, and build/search params split the keys as documented."""
    import yaml

    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    section = schema["properties"]["retrieve"]["properties"]
    defaults = {"index": section["index"]["default"],
                **{k: v["default"] for part in ("ivf", "hnsw") for k, v in section[part]["properties"].items()}}
    assert IndexSettings() == IndexSettings(**defaults)
    assert IndexSettings.from_config({"depth": 10}) == IndexSettings()
    chosen = IndexSettings.from_config({"index": "hnsw", "ivf": {"nprobe": 3}, "hnsw": {"ef_search": 9}})
    assert chosen.build_params() == {"index": "hnsw", "m": 32, "ef_construction": 200}
    assert chosen.search_params() == {"index": "hnsw", "ef_search": 9}
    assert IndexSettings.from_params(chosen.search_params()).ef_search == 9
    assert IndexSettings().build_params() == {"index": "flat"}
    with pytest.raises(ValueError, match="retrieve.index"):
        IndexSettings(index="pq")


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_more_shards_than_documents(tmp_path, vectors, kind):
    """Empty shards (64 shards of a 5-document corpus) are built and searched like any other."""
    docs, queries = vectors
    paths = write_shards(tmp_path, docs[:5], 64)
    settings = IndexSettings(index=kind)
    index_paths = None
    if settings.approximate:
        index_paths = [tmp_path / f"shard-{s}.faiss" for s in range(64)]
        for path, index_file in zip(paths, index_paths, strict=True):
            pipeline.build_index(path, index_file, settings.build_params(), threads=1)
    scores, docids = search_shards(queries, paths, 10, settings, index_paths)
    want_scores, want_idx = brute_force(queries, docs[:5], 5)
    np.testing.assert_allclose(scores, want_scores, rtol=1e-5, atol=1e-5)
    assert (docids == np.array([[f"d{i}" for i in row] for row in want_idx], dtype=object)).all()


def test_search_stages_never_import_torch(tmp_path, vectors):
    """build_index and retrieve jobs use faiss only: torch (2-3 s to import) stays out of their process."""
    from conftest import modules_imported_by

    docs, queries = vectors
    paths = write_shards(tmp_path, docs, 2)
    write_table(embeddings_table([f"q{i}" for i in range(len(queries))], queries, "qid"), tmp_path / "queries.parquet")
    settings = IndexSettings(index="hnsw")
    stages = (
        "from bicross import pipeline\n"
        f"indexes = [p.replace('.parquet', '.faiss') for p in {[str(p) for p in paths]!r}]\n"
        f"for shard, out in zip({[str(p) for p in paths]!r}, indexes):\n"
        f"    pipeline.build_index(shard, out, {settings.build_params()!r}, threads=1)\n"
        f"pipeline.retrieve({str(tmp_path / 'queries.parquet')!r}, {[str(p) for p in paths]!r}, 10, "
        f"{str(tmp_path / 'run.parquet')!r}, threads=1, indexes=indexes, search={settings.search_params()!r})\n")
    assert modules_imported_by(stages, "torch") == {"torch": False}
    assert (tmp_path / "run.parquet").stat().st_size > 0
