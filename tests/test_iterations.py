"""The whole loop on a tiny model: 2 iterations end to end, then raising N to 3 plans only iteration 3;
its loss curves, model cards, an exported model, and the report rendered in headless Chromium."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile

import pyarrow.parquet as pq
import pytest
import yaml
from workflow_utils import planned_jobs, snakemake, tiny_loop_config, write_config


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    from conftest import save_tiny_bi_encoder, write_tiny_beir

    root = tmp_path_factory.mktemp("loop")
    model = save_tiny_bi_encoder(root / "model")
    config = tiny_loop_config(model, write_tiny_beir(root / "beir", extra=4))  # a split the run leaves out
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
    assert "loss curves: results/tiny/report/loss-cross.png, results/tiny/report/loss-distill.png" in proc.stdout


def test_every_training_job_keeps_its_loss_table(finished_run):
    """loss.parquet in each trained model: every step once, in order, the losses of training.json; a
    bi-encoder the teacher gate kept as a copy trained nothing and has none (nor its source's)."""
    from bicross.losscurve import read_loss_table

    res = finished_run[0] / "results" / "tiny"
    for k in (1, 2):
        model = res / f"iter{k}" / "cross" / "model"
        summary = json.loads((model / "training.json").read_text())
        table = read_loss_table(model / "loss.parquet").to_pydict()
        assert table["step"] == list(range(1, summary["steps"] + 1))
        assert table["loss"] == [loss for _, loss in summary["history"]]
        assert all(rate is not None and rate >= 0 for rate in table["learning_rate"])
        bi = res / f"iter{k}" / "bi" / "model"
        assert json.loads((bi / "training.json").read_text())["skipped"] and not (bi / "loss.parquet").exists()
    for kind in ("cross", "distill"):
        assert (res / "report" / f"loss-{kind}.png").read_bytes()[:4] == b"\x89PNG"


def _card(path):
    import yaml

    text = path.read_text()
    return yaml.safe_load(text.split("---\n")[1]), text


def test_model_cards_name_the_metrics_of_their_model(finished_run):
    """Beside every trained model folder, after evaluation: a card whose front matter and table hold
    exactly the metrics.parquet rows of that model (iteration, encoder), with its config sections."""
    from bicross.summary import COUNTS

    res = finished_run[0] / "results" / "tiny"
    rows = pq.read_table(res / "metrics.parquet").to_pylist()
    for k in (1, 2):
        for encoder in ("bi", "cross"):
            front, text = _card(res / f"iter{k}" / encoder / "README.md")
            mine = [r for r in rows if r["iteration"] == k and r["encoder"] == encoder]
            assert mine
            assert front["metrics"] == sorted({r["metric"] for r in mine} - set(COUNTS))
            held = {(result["dataset"]["split"], m["type"]): m["value"]
                    for result in front["model-index"][0]["results"] for m in result["metrics"]}
            assert held == {(r["split"], r["metric"]): round(r["value"], 6) for r in mine
                            if r["metric"] not in COUNTS}
            for r in mine:
                assert f"| {r['split']} | {r['metric']} |" in text
            assert front["library_name"] == "sentence-transformers"
            assert front["pipeline_tag"] == ("sentence-similarity" if encoder == "bi" else "text-ranking")
            section = "distill:" if encoder == "bi" else "cross_encoder:"
            assert f"iteration {k} of experiment `tiny`" in text and section in text and "dataset:" in text
    # the per-iteration override of cross_encoder.learning_rate, as that iteration trained with it
    assert "learning_rate: 3.0e-05" in _card(res / "iter2" / "cross" / "README.md")[1]
    assert "learning_rate: 5.0e-05" in _card(res / "iter1" / "cross" / "README.md")[1]


def _export(root, *args):
    return subprocess.run([sys.executable, "-m", "bicross.cli", "export-model", *map(str, args)],
                          capture_output=True, text=True, cwd=root)


def test_exported_models_load_with_sentence_transformers(finished_run, tmp_path):
    from sentence_transformers import CrossEncoder, SentenceTransformer

    root = finished_run[0]
    res = root / "results" / "tiny"
    for encoder in ("bi", "cross"):
        out = tmp_path / encoder
        proc = _export(root, res, 2, encoder, out)
        assert proc.returncode == 0, proc.stderr
        assert (out / "README.md").read_text() == (res / "iter2" / encoder / "README.md").read_text()
        assert not list(out.rglob("*.checkpoints"))
    assert {"modules.json", "sentence_bert_config.json", "config.json"} <= {p.name for p in (tmp_path / "bi").iterdir()}
    assert (tmp_path / "bi" / "1_Pooling" / "config.json").is_file()
    assert SentenceTransformer(str(tmp_path / "bi"), device="cpu").encode(["a b c"]).shape == (1, 32)
    cross = CrossEncoder(str(tmp_path / "cross"), device="cpu")
    assert cross.config.num_labels == 1 and cross.predict([("a", "b"), ("c", "d")]).shape == (2,)

    proc = _export(root, res, 7, "cross", tmp_path / "none")  # no such iteration: the path and what exists
    assert proc.returncode == 2 and "iter7/cross/model" in proc.stderr and "iter2/cross" in proc.stderr
    proc = _export(root, res, 2, "cross", tmp_path / "cross")  # never over an earlier export
    assert proc.returncode == 2 and "an empty or new folder" in proc.stderr


def test_raising_iterations_plans_only_the_new_iteration(finished_run):
    root, config, _ = finished_run
    assert planned_jobs(snakemake(root, root / "config.yaml", "-n")) == {}
    config["iterations"] = 3
    proc = snakemake(root, write_config(root / "config3.yaml", config), "-n")
    assert planned_jobs(proc) == {  # test and the held-out validation queries, plus bi-encoder 2's train run
        "encode_corpus": 2, "encode_queries": 3, "retrieve": 3, "evaluate_bi": 2, "mine_negatives": 1,
        "train_cross": 1, "rerank": 2, "score_teacher": 1, "gate_teacher": 1, "distill_bi": 1, "evaluate_cross": 2,
        "summarize": 1, "select_best": 1, "report_assets": 1, "loss_curves": 1, "model_cards": 1, "all": 1}
    outputs = [line.split(":", 1)[1].strip() for line in proc.stdout.splitlines()
               if line.strip().startswith("output:")]
    for out in outputs:  # iteration 3, the bi-encoder 2 train retrieval that mines for it, aggregation
        assert ("iter3/" in out or "iter2/bi/queries/train" in out or "iter2/bi/run/train" in out
                or "metrics.parquet" in out or "/report/" in out or out == "results/tiny/best"), out


def test_adding_a_split_plans_only_that_split(finished_run):
    """A split added to dataset.splits and evaluate.splits of a finished run is prepared, tokenized,
    encoded, retrieved, reranked and evaluated alone: the corpus, its tokens and encodings, the mined
    negatives, every trained model, and the train and held-out splits they came from stay as they are."""
    root = finished_run[0]
    config = yaml.safe_load((root / "config.yaml").read_text())  # the finished run's (other tests change the dict)
    config["dataset"]["splits"] = [*config["dataset"]["splits"], "extra"]  # not "dev": auto would validate on it
    config["evaluate"] = {"splits": ["test", "extra"]}
    proc = snakemake(root, write_config(root / "config-extra.yaml", config), "-n")
    jobs = planned_jobs(proc)
    assert jobs == {  # one tokenizer (both encoders start from the tiny model); bi-encoders 0-2, cross 1-2
        "prepare_split": 1, "tokenize_queries": 1, "encode_queries": 3, "retrieve": 3, "evaluate_bi": 3,
        "rerank": 2, "evaluate_cross": 2, "summarize": 1, "select_best": 1, "report_assets": 1, "model_cards": 1,
        "all": 1}, jobs
    assert not {"prepare_corpus", "tokenize_corpus", "encode_corpus", "mine_negatives", "train_cross", "distill_bi",
                "score_teacher"} & set(jobs)
    outputs = [line.split(":", 1)[1].strip() for line in proc.stdout.splitlines()
               if line.strip().startswith("output:")]
    for out in outputs:  # the new split's files, and what aggregates every split's metrics
        assert ("extra" in out or "metrics.parquet" in out or "/report/" in out or out.endswith("README.md")
                or out == "results/tiny/best"), out


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


def _chromium():
    from bicross.browser import find_chromium

    found = find_chromium()
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but no chromium on PATH: .ci/run installs Debian's chromium package")
        pytest.skip("no chromium on PATH (`apt-get install chromium`; .ci/run installs it in CI)")
    return found


def test_report_renders_in_chromium(finished_run):
    """`snakemake --report report.html` opened in headless Chromium: the metrics table, the metric plot,
    the loss curves and the runtimes, each clicked open and found in the rendered DOM."""
    from bicross.browser import Browser, SnakemakeReport

    chromium = _chromium()
    root = finished_run[0]
    snakemake(root, root / "config.yaml", "--report", str(root / "report.html"))
    with Browser(chromium) as browser:
        report = SnakemakeReport(browser, root / "report.html")
        rows = report.open_category("Metrics")
        assert {"results/tiny/report/metrics.html", "results/tiny/report/metrics.png"} <= set(rows), rows
        report.view("metrics.html")
        assert {"iteration", "encoder", "ndcg@10", "cross", "holdout"} <= set(report.shown_texts("ndcg@10"))
        report.view("metrics.png")
        width, height = report.shown_image("metrics.png")
        assert width > 300 and height > 200

        rows = report.open_category("Training")
        assert set(rows) == {"results/tiny/report/loss-cross.png", "results/tiny/report/loss-distill.png"}
        for kind in ("cross", "distill"):
            report.view(f"loss-{kind}.png")
            assert report.shown_image(f"loss-{kind}.png")

        assert "results/tiny/report/runtimes.html" in report.open_category("Runtimes")
        report.view("runtimes.html")
        assert {"rule", "seconds", "train_cross", "distill_bi"} <= set(report.shown_texts("train_cross"))
