"""The real workflow with retrieval and scoring in parts: eight scoring jobs at once on disjoint GPU ids
(a fake inventory), merged outputs equal to one job's."""

from __future__ import annotations

import re

import numpy as np
import pyarrow.parquet as pq
import pytest
from test_parts import assert_same_scores
from workflow_utils import planned_jobs, snakemake, tiny_loop_config, write_config

from bicross import pipeline

QUERY_PARTS, SCORE_PARTS = 2, 8


def parted_config(tmp_path, tiny_model, tiny_beir):
    config = tiny_loop_config(tiny_model, tiny_beir)
    config.update(iterations=1, overrides={})
    config["retrieve"]["query_shards"] = QUERY_PARTS
    config["cross_encoder"]["score_shards"] = SCORE_PARTS
    return write_config(tmp_path / "config.yaml", config)


def test_every_part_is_a_job_and_each_output_one_merge(tmp_path, tiny_model, tiny_beir):
    jobs = planned_jobs(snakemake(tmp_path, parted_config(tmp_path, tiny_model, tiny_beir), "-n"))
    # runs: bi-encoder 0 on train, test and holdout (the teacher gate's validation queries), bi-encoder 1
    # on test and holdout; cross-encoder 1 reranks test and holdout and scores the train candidates
    assert jobs["retrieve"] == 5 * QUERY_PARTS
    assert jobs["rerank"] == 2 * SCORE_PARTS and jobs["score_teacher"] == SCORE_PARTS
    assert jobs["merge_parts"] == 5 + 2 + 1


@pytest.mark.slow  # 16 scoring jobs, each importing torch: minutes on 2 cores
def test_parts_run_at_once_on_their_own_gpus_and_merge_to_one_jobs_output(tmp_path, tiny_model, tiny_beir,
                                                                            monkeypatch):
    cfg = parted_config(tmp_path, tiny_model, tiny_beir)
    monkeypatch.setenv("BICROSS_GPUS", ",".join(str(i) for i in range(8)))  # eight GPUs, none real
    monkeypatch.setenv("BICROSS_GPU_LOCKS", str(tmp_path / "gpu-locks"))
    monkeypatch.setenv("BICROSS_TRAIN_GPUS", "0")  # the trainer on CPU: accelerate would look for CUDA
    # as far as cross-encoder 1's scores: 16 scoring parts asking for a GPU each, 8 GPUs
    targets = [f"results/tiny/iter1/cross/{name}.parquet" for name in ("run/test", "teacher")]
    snakemake(tmp_path, cfg, *targets, "--cores", "8", "--resources", "gpu=8", "--set-threads", "rerank=1",
              "score_teacher=1")
    res = tmp_path / "results" / "tiny"

    logs = sorted((res / "logs").glob("rerank/*-part*.log")) + sorted((res / "logs").glob("score_teacher/*.log"))
    assert len(logs) == 2 * SCORE_PARTS
    assigned = [re.search(r"assigned GPU\(s\) (\d+)", p.read_text()).group(1) for p in logs]
    # each job takes the lowest free id: an 8th id handed out means eight jobs held one at once
    assert set(assigned) == {str(i) for i in range(8)}, assigned
    assert not list(res.rglob("parts"))  # the parts are temporary: gone once merged
    assert planned_jobs(snakemake(tmp_path, cfg, *targets, "-n")) == {}

    embeddings = sorted(str(p) for p in (res / "iter0" / "bi" / "embeddings").glob("shard-*.parquet"))
    pipeline.retrieve(str(res / "iter0" / "bi" / "queries" / "test.parquet"), embeddings, 20, str(tmp_path / "r.parquet"))
    assert pq.read_table(res / "iter0" / "bi" / "run" / "test.parquet").equals(pq.read_table(tmp_path / "r.parquet"))

    model, tokens = str(res / "iter1" / "cross" / "model"), next((res / "tokens").iterdir())
    pipeline.rerank(model, res / "iter0" / "bi" / "run" / "test.parquet", tokens / "queries" / "test.parquet",
                    tokens / "corpus.parquet", tmp_path / "rr.parquet", depth=10, max_length=64, precision="fp32")
    assert_same_scores(pq.read_table(res / "iter1" / "cross" / "run" / "test.parquet"),
                       pq.read_table(tmp_path / "rr.parquet"))
    pipeline.score_teacher(model, res / "iter0" / "bi" / "run" / "train.parquet", res / "data" / "qrels" / "train.parquet",
                           tokens / "queries" / "train.parquet", tokens / "corpus.parquet", tmp_path / "t.parquet",
                           depth=8, max_length=64, precision="fp32")
    teacher = pq.read_table(res / "iter1" / "cross" / "teacher.parquet")
    assert_same_scores(teacher, pq.read_table(tmp_path / "t.parquet"))
    assert np.isfinite(teacher.column("score").to_numpy()).all()


def test_sts_pair_scoring_in_parts_plans_a_merge_per_scored_file(tmp_path, tiny_model):
    from test_sts_workflow import sts_config, write_tiny_stsb

    config = sts_config(tiny_model, write_tiny_stsb(tmp_path / "stsb"), iterations=1)
    config["sts"].update(score_shards=3, supervised_baseline=False)
    config["evaluate"]["splits"] = ["dev", "test"]
    jobs = planned_jobs(snakemake(tmp_path, write_config(tmp_path / "config.yaml", config), "-n"))
    # score_pairs_* (test) by bi-encoders 0 and 1 and cross-encoder 1; score_split_* (the training pairs,
    # and dev: the teacher gate's split) by bi-encoder 0 and cross-encoder 1 (bi-encoder 1 scores dev only)
    assert jobs["score_pairs_bi"] == 2 * 3 and jobs["score_pairs_cross"] == 3
    assert jobs["score_split_bi"] == 3 * 3 and jobs["score_split_cross"] == 2 * 3
    assert jobs["merge_parts"] == 3 + 3 + 2
