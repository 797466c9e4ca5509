"""Scale: an MS MARCO-sized config plans quickly; approximate indexes are built once per shard and reused."""

from __future__ import annotations

import time

import pyarrow.parquet as pq
import pytest
import yaml
from workflow_utils import REPO, planned_jobs, snakemake, tiny_retrieval_config, write_config

SHARDS = 64
QUERY_PARTS = SCORE_PARTS = 8  # one per GPU of an 8-GPU box


def msmarco_config(root, iterations: int, index: str) -> dict:
    """config/examples/msmarco.yaml pointed at the full collection's file names (placeholders here)."""
    config = yaml.safe_load((REPO / "config/examples/msmarco.yaml").read_text())
    files = {"collection": "collection.tsv",
             "queries": {"train": "queries.train.tsv", "dev": "queries.dev.small.tsv"},
             "qrels": {"train": "qrels.train.tsv", "dev": "qrels.dev.small.tsv"}}
    for name in [files["collection"], *files["queries"].values(), *files["qrels"].values()]:
        (root / name).write_text("")  # a dry run plans from the names; it never reads them
    config.update(experiment="msmarco-full", iterations=iterations)
    config["dataset"].update(path=str(root), splits=["train", "dev"], **files)
    config["encode"]["shards"] = SHARDS
    config["retrieve"]["query_shards"] = QUERY_PARTS
    config["cross_encoder"] = {"score_shards": SCORE_PARTS}
    config["retrieve"]["index"] = index
    config["evaluate"]["splits"] = ["dev"]
    return config


@pytest.mark.parametrize("index", ["flat", "hnsw"])
def test_msmarco_sized_dry_run_plans_every_shard_quickly(tmp_path, index):
    data = tmp_path / "msmarco"
    data.mkdir()
    iterations = 1  # bi-encoders 0 and 1 each encode (and index) the whole corpus
    cfg = write_config(tmp_path / "config.yaml", msmarco_config(data, iterations, index))
    start = time.perf_counter()
    jobs = planned_jobs(snakemake(tmp_path, cfg, "-n", "--quiet", "rules"))
    seconds = time.perf_counter() - start
    print(f"dry run, {SHARDS} shards, index {index}: {sum(jobs.values())} jobs planned in {seconds:.1f} s")
    encoders = iterations + 1
    assert jobs["encode_corpus"] == SHARDS * encoders
    assert jobs.get("build_index", 0) == (SHARDS * encoders if index != "flat" else 0)
    # dev for every bi-encoder; train for those whose run mines the next iteration's negatives
    runs = encoders + iterations
    assert jobs["encode_queries"] == runs and jobs["retrieve"] == runs * QUERY_PARTS
    # cross-encoder 1 reranks dev and scores the train candidates as teacher, each in parts
    assert jobs["rerank"] == jobs["score_teacher"] == SCORE_PARTS
    assert jobs["merge_parts"] == runs + 2
    assert seconds < 60


def test_approximate_index_is_built_once_per_shard_and_reused(tmp_path, tiny_model, tiny_beir):
    config = tiny_retrieval_config(tiny_model, tiny_beir, shards=3, eval_splits=["train", "test"])
    config["retrieve"].update(index="ivf", ivf={"nlist": 2, "nprobe": 2})
    cfg = write_config(tmp_path / "config.yaml", config)
    snakemake(tmp_path, cfg)
    res = tmp_path / "results" / "tiny"
    indexes = sorted((res / "iter0" / "bi" / "index" / "ivf").glob("shard-*.faiss"))
    assert [p.name for p in indexes] == ["shard-0.faiss", "shard-1.faiss", "shard-2.faiss"]
    assert "built a ivf index" in (res / "logs" / "build_index" / "iter0-shard0.log").read_text()
    assert (res / "benchmarks" / "build_index" / "iter0-shard0.tsv").exists()
    run = pq.read_table(res / "iter0" / "bi" / "run" / "test.parquet")
    assert run.num_rows == 8 * 20  # nprobe = nlist: every list searched, as many results as exact search
    assert "'nprobe': 2" in (res / "logs" / "retrieve" / "iter0-test.log").read_text()

    config["retrieve"]["ivf"]["nprobe"] = 1  # a search setting: both splits search again, no rebuild
    cfg = write_config(tmp_path / "config.yaml", config)
    assert planned_jobs(snakemake(tmp_path, cfg, "-n")) == {
        "retrieve": 2, "evaluate_bi": 2, "summarize": 1, "report_assets": 1, "all": 1}
    config["retrieve"]["ivf"]["nlist"] = 3  # a build setting: every shard's index is rebuilt
    cfg = write_config(tmp_path / "config.yaml", config)
    assert planned_jobs(snakemake(tmp_path, cfg, "-n"))["build_index"] == 3
