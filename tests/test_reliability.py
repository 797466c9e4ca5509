"""Reruns after failures: a stage that failed on a changed input runs again (and fails again) until the
input is fixed; Snakemake never reports success over it."""

from __future__ import annotations

from test_sts_workflow import sts_config, write_tiny_stsb
from workflow_utils import planned_jobs, snakemake, tiny_retrieval_config, write_config


def _failed(proc, log, message):
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out[-3000:]
    assert "Nothing to be done" not in out
    assert message in log.read_text(), log.read_text()


def test_a_failed_data_stage_runs_again_until_its_input_is_fixed(tmp_path, tiny_model, tiny_beir):
    cfg = write_config(tmp_path / "config.yaml", tiny_retrieval_config(tiny_model, tiny_beir, shards=1,
                                                                      eval_splits=["test"]))
    res = tmp_path / "results" / "tiny"
    snakemake(tmp_path, cfg)
    metrics_mtime = (res / "metrics.parquet").stat().st_mtime_ns
    log = res / "logs" / "prepare_data.log"

    corpus = tiny_beir / "corpus.jsonl"
    good = corpus.read_text()
    lines = good.splitlines(keepends=True)
    corpus.write_text("".join(lines[:9]) + '{"_id": "d9", "text": \n' + "".join(lines[10:]))
    _failed(snakemake(tmp_path, cfg, check=False), log, "corpus.jsonl, line 10: expected a JSON object")
    # the failed job's outputs are gone; the old metrics must not pass for current ones
    _failed(snakemake(tmp_path, cfg, check=False), log, "corpus.jsonl, line 10: expected a JSON object")

    # fixed, but now a qrels file breaks: the same again for it
    corpus.write_text(good)
    qrels = tiny_beir / "qrels" / "test.tsv"
    good_qrels = qrels.read_text()
    qrels.write_text(good_qrels + "q19\td19\tmany\n")
    _failed(snakemake(tmp_path, cfg, check=False), log, "test.tsv, line 10: expected an integer relevance")
    assert "prepare_data" in planned_jobs(snakemake(tmp_path, cfg, "-n"))

    qrels.write_text(good_qrels)  # fixed: the data stage and everything after it run again
    jobs = planned_jobs(snakemake(tmp_path, cfg, "-n"))
    assert {"prepare_data", "tokenize", "encode_corpus", "retrieve", "evaluate_bi", "summarize"} <= set(jobs)
    assert (res / "metrics.parquet").stat().st_mtime_ns == metrics_mtime  # the old ones, never rewritten


def test_a_failed_pairs_stage_runs_again_until_its_input_is_fixed(tmp_path, tiny_model):
    data = write_tiny_stsb(tmp_path / "stsb", sizes=(("train", 24), ("test", 12)))
    config = sts_config(tiny_model, data, iterations=0, sts={"max_length": 16, "select_split": None})
    config["dataset"]["splits"] = ["train", "test"]
    cfg = write_config(tmp_path / "config.yaml", config)
    snakemake(tmp_path, cfg)
    test = data / "sts-test.csv"
    rows = [line.split("\t") for line in test.read_text().splitlines(keepends=True)]
    rows[3][4] = "high"  # line 4's score
    test.write_text("".join("\t".join(fields) for fields in rows))
    log = tmp_path / "results" / "tinysts" / "logs" / "prepare_pairs" / "test.log"
    _failed(snakemake(tmp_path, cfg, check=False), log, "sts-test.csv, line 4: expected a numeric score")
    assert planned_jobs(snakemake(tmp_path, cfg, "-n")).get("prepare_pairs") == 1
