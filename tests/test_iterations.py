"""The whole loop on a tiny model: 2 iterations end to end, then raising N to 3 plans only iteration 3."""

from __future__ import annotations

import zipfile

import pyarrow.parquet as pq
import pytest
from workflow_utils import planned_jobs, snakemake, tiny_loop_config, write_config


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    from conftest import save_tiny_bi_encoder, write_tiny_beir

    root = tmp_path_factory.mktemp("loop")
    model = save_tiny_bi_encoder(root / "model")
    config = tiny_loop_config(model, write_tiny_beir(root / "beir"))
    cfg = write_config(root / "config.yaml", config)
    proc = snakemake(root, cfg)
    return root, config, proc


def test_two_iterations_end_to_end(finished_run):
    root, _, proc = finished_run
    res = root / "results" / "tiny"
    rows = pq.read_table(res / "metrics.parquet").to_pylist()
    assert {(r["iteration"], r["encoder"]) for r in rows} == {(0, "bi"), (1, "bi"), (2, "bi"), (1, "cross"),
                                                               (2, "cross")}
    for line in ("bi       2", "cross    1", "cross    2"):
        assert line in proc.stdout  # the printed table covers every iteration
    teacher = pq.read_table(res / "iter1" / "cross" / "teacher.parquet")
    qrels = pq.read_table(res / "data" / "qrels" / "train.parquet")
    pairs = set(zip(teacher.column("qid").to_pylist(), teacher.column("docid").to_pylist(), strict=True))
    assert set(zip(qrels.column("qid").to_pylist(), qrels.column("docid").to_pylist(), strict=True)) <= pairs
    log = (res / "logs" / "train_cross" / "iter2.log").read_text()
    assert "\"learning_rate\": 3e-05" in log  # the per-iteration override
    assert "\"model\": \"results/tiny/iter1/cross/model\"" in log  # init: warm
    from sentence_transformers import CrossEncoder, SentenceTransformer

    assert SentenceTransformer(str(res / "iter2" / "bi" / "model")).encode(["a b c"]).shape == (1, 32)
    assert CrossEncoder(str(res / "iter2" / "cross" / "model")).predict([("a", "b")]).shape == (1,)
    assert not list(res.rglob("*.checkpoints"))  # checkpoints are removed after success


def test_raising_iterations_plans_only_the_new_iteration(finished_run):
    root, config, _ = finished_run
    assert planned_jobs(snakemake(root, root / "config.yaml", "-n")) == {}
    config["iterations"] = 3
    proc = snakemake(root, write_config(root / "config3.yaml", config), "-n")
    assert planned_jobs(proc) == {  # test and the held-out validation queries, plus bi-encoder 2's train run
        "encode_corpus": 2, "encode_queries": 3, "retrieve": 3, "evaluate_bi": 2, "mine_negatives": 1,
        "train_cross": 1, "rerank": 2, "score_teacher": 1, "gate_teacher": 1, "distill_bi": 1, "evaluate_cross": 2,
        "summarize": 1, "select_best": 1, "report_assets": 1, "all": 1}
    outputs = [line.split(":", 1)[1].strip() for line in proc.stdout.splitlines()
               if line.strip().startswith("output:")]
    for out in outputs:  # iteration 3, the bi-encoder 2 train retrieval that mines for it, aggregation
        assert ("iter3/" in out or "iter2/bi/queries/train" in out or "iter2/bi/run/train" in out
                or "metrics.parquet" in out or "/report/" in out or out == "results/tiny/best"), out


def test_report_has_table_and_plot(finished_run):
    root, _, _ = finished_run
    snakemake(root, root / "config.yaml", "--report", str(root / "report.zip"))
    with zipfile.ZipFile(root / "report.zip") as archive:
        names = archive.namelist()
        table = next(n for n in names if n.endswith("metrics.tsv"))
        text = archive.read(table).decode()
        assert "cross" in text and "ndcg@10" in text
        plot = next(n for n in names if n.endswith("metrics.png"))
        assert archive.read(plot)[:4] == b"\x89PNG"
        assert any(n.endswith("report.html") for n in names)


def test_probe_of_iteration_2_plans_only_bi_encoder_2(finished_run):
    """`bicross probe --from bi` on a retrieval run: a dry run plans distillation and bi-encoder 2's
    retrieval and evaluation, nothing of iterations 0-1 and no cross-encoder."""
    import subprocess
    import sys

    root = finished_run[0]
    proc = subprocess.run([sys.executable, "-m", "bicross.cli", "probe", "p2", "--configfile", str(root / "config.yaml"),
                           "--directory", str(root), "--reuse", "tiny", "--iteration", "2", "--from", "bi",
                           "--splits", "test", "--set", "distill.epochs=2", "--", "-n"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-4000:]
    log = (root / "results" / "p2.probe.log").read_text()
    jobs = planned_jobs(subprocess.CompletedProcess([], 0, log, ""))
    assert jobs["distill_bi"] == 1 and jobs["evaluate_bi"] == 1 and "retrieve" in jobs
    assert not {"train_cross", "rerank", "score_teacher", "mine_negatives", "tokenize_corpus"} & set(jobs)
    outputs = [line.split(":", 1)[1].strip() for line in log.splitlines() if line.strip().startswith("output:")]
    assert outputs and all("results/p2/iter2/" in out for out in outputs), outputs
