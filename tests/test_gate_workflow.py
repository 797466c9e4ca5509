"""The teacher gate in a real Snakemake run: a cross-encoder that cannot learn (learning rate 0) is
named in the log and summary, and loses to bi-encoder 0 on held-out train queries; each
`validation.losing_teacher` mode then does what it says. Also: a dev split is used as it is."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from workflow_utils import planned_jobs, snakemake, write_config


def _config(model, beir, **validation) -> dict:
    return {
        "experiment": "gate", "iterations": 1,
        "dataset": {"format": "beir", "path": str(beir), "splits": ["train", "test"]},
        "bi_encoder": {"model": str(model)},
        "tokenize": {"query_max_length": 16, "doc_max_length": 48},
        "encode": {"batch_size": 16, "precision": "fp32", "shards": 1},
        "retrieve": {"depth": 20},
        "mine": {"rank_start": 2, "rank_end": 20, "negatives_per_query": 4},
        "cross_encoder": {"model": str(model), "train_group_size": 4, "batch_size": 4, "epochs": 1,
                          "learning_rate": 0.0, "head_learning_rate": 0.0, "max_length": 64, "precision": "fp32",
                          "rerank_depth": 10, "teacher_depth": 8},
        "distill": {"group_size": 4, "batch_size": 4, "epochs": 1, "precision": "fp32"},
        "validation": {"holdout_queries": 8, **validation},
    }


@pytest.fixture(scope="module")
def skipped_run(tmp_path_factory):
    from conftest import save_tiny_bi_encoder, write_tiny_beir

    root = tmp_path_factory.mktemp("gate")
    model = save_tiny_bi_encoder(root / "model")
    config = _config(model, write_tiny_beir(root / "beir", num_docs=80, train=40, test=8))
    proc = snakemake(root, write_config(root / "config.yaml", config))
    return root, config, proc


def test_a_cross_encoder_that_learned_nothing_is_named(skipped_run):
    root, _, proc = skipped_run
    res = root / "results" / "gate"
    learning = json.loads((res / "iter1" / "cross" / "model" / "training.json").read_text())["learning"]
    assert learning["verdict"] == "did not learn" and learning["uniform"] == pytest.approx(1.3863, abs=1e-4)
    log = (res / "logs" / "train_cross" / "iter1.log").read_text()
    assert "the cross-encoder did not learn: loss" in log and "(a uniform guess: 1.39)" in log
    assert "cross-encoder 1 did not learn: loss" in proc.stdout  # the end-of-run summary


def test_the_losing_teacher_is_skipped(skipped_run):
    root, _, proc = skipped_run
    res = root / "results" / "gate"
    gate = json.loads((res / "iter1" / "gate" / "bi.json").read_text())
    assert gate["split"] == "holdout" and gate["metric"] == "ndcg@10"
    assert not gate["passed"] and gate["decision"] == "skip", gate
    assert gate["teacher"] < gate["student_score"]
    metrics = {(r["encoder"], r["iteration"], r["metric"]): r["value"]
               for r in pq.read_table(res / "metrics.parquet").to_pylist() if r["split"] == "holdout"}
    assert metrics[("cross", 1, "ndcg@10")] == pytest.approx(gate["teacher"])
    assert metrics[("bi", 0, "ndcg@10")] == pytest.approx(gate["student_score"])
    assert gate["message"] in proc.stdout and "not distilled" in proc.stdout
    # bi-encoder 1 is bi-encoder 0, so it retrieves exactly the same
    assert metrics[("bi", 1, "ndcg@10")] == metrics[("bi", 0, "ndcg@10")]
    assert json.loads((res / "iter1" / "bi" / "model" / "training.json").read_text())["skipped"]
    checks = (res / "report" / "checks.tsv").read_text()
    assert "teacher gate" in checks and "did not learn" in checks


def test_the_held_out_queries_never_train(skipped_run):
    root = skipped_run[0]
    res = root / "results" / "gate"
    held = set(pq.read_table(res / "data" / "queries" / "holdout.parquet").column("qid").to_pylist())
    assert len(held) == 8
    assert not held & set(pq.read_table(res / "data" / "queries" / "train.parquet").column("qid").to_pylist())
    assert not held & set(pq.read_table(res / "data" / "qrels" / "train.parquet").column("qid").to_pylist())
    assert not held & set(pq.read_table(res / "iter1" / "negatives.parquet").column("qid").to_pylist())
    assert not held & set(pq.read_table(res / "iter1" / "cross" / "teacher.parquet").column("qid").to_pylist())


def test_stop_and_warn(skipped_run):
    root, config, _ = skipped_run
    stop = write_config(root / "stop.yaml", {**config, "validation": {**config["validation"], "losing_teacher": "stop"}})
    proc = snakemake(root, stop, check=False)
    assert proc.returncode != 0
    text = proc.stdout + proc.stderr + (root / "results/gate/logs/gate_teacher/iter1-bi.log").read_text()
    assert "cross-encoder 1" in text and "vs bi-encoder 0" in text and "the run stops" in text
    assert not (root / "results/gate/iter1/gate/bi.json").exists()
    assert snakemake(root, stop, check=False).returncode != 0  # and again: no stale success

    warn = write_config(root / "warn.yaml", {**config, "validation": {**config["validation"], "losing_teacher": "warn"}})
    proc = snakemake(root, warn)
    gate = json.loads((root / "results/gate/iter1/gate/bi.json").read_text())
    assert gate["decision"] == "distil" and not gate["passed"]
    assert "distilled anyway" in proc.stdout
    trained = json.loads((root / "results/gate/iter1/bi/model/training.json").read_text())
    assert "skipped" not in trained and trained["steps"] >= 1


def test_a_dev_split_is_the_validation_split_and_nothing_is_held_out(tmp_path):
    from conftest import save_tiny_bi_encoder, write_tiny_beir

    beir = write_tiny_beir(tmp_path / "beir")
    with open(beir / "queries.jsonl", "a") as f:
        f.write('{"_id": "dev0", "text": "alpha beta"}\n{"_id": "dev1", "text": "gamma delta"}\n')
    (beir / "qrels" / "dev.tsv").write_text("query-id\tcorpus-id\tscore\ndev0\td0\t1\ndev1\td1\t1\n")
    config = _config(save_tiny_bi_encoder(tmp_path / "model"), beir)
    config["dataset"]["splits"] = ["train", "dev", "test"]
    proc = snakemake(tmp_path, write_config(tmp_path / "config.yaml", config), "-n")
    jobs = planned_jobs(proc)
    assert jobs["gate_teacher"] == 1 and jobs["rerank"] == 2  # test and dev
    assert "holdout" not in proc.stdout
    assert "results/gate/iter1/metrics/cross-dev.json" in proc.stdout
