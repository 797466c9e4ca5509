"""The whole loop on a tiny model: 2 iterations end to end with a dev split and denoised mining, then
raising N to 3 plans only iteration 3; the best iteration chosen on dev and best/ models that load, the
mining filter from iteration 2 on, paired tests of every change, loss curves, model cards, an exported
model, and the report rendered in headless Chromium. One built run serves every test here."""

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
    beir = write_tiny_beir(root / "beir", train=12, test=12, extra=4)  # extra: a split the run leaves out
    lines = (beir / "qrels" / "test.tsv").read_text().splitlines()
    (beir / "qrels" / "test.tsv").write_text("\n".join(lines[:7]) + "\n")  # header + 6 test queries
    (beir / "qrels" / "dev.tsv").write_text("\n".join(lines[:1] + lines[7:]) + "\n")  # the other 6: dev
    config = tiny_loop_config(model, beir)
    config["dataset"]["splits"] = ["train", "dev", "test"]  # dev: the validation split, nothing held out
    config["mine"].update(filter_teacher="cross", max_score=0.99, relative_margin=0.05)
    config["encode"]["shards"] = 1  # sharded encoding runs in test_workflow.py and test_scale.py: 3 jobs fewer here
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
    assert planned_jobs(proc) == {  # test and dev, bi-encoder 2's train run, cross-encoder 2's mining filter
        "encode_corpus": 1, "encode_queries": 3, "retrieve": 3, "evaluate_bi": 2, "mine_negatives": 1,
        "score_mining_candidates": 1,
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
    negatives, every trained model, and the train and dev splits they came from stay as they are."""
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
        assert {"iteration", "encoder", "ndcg@10", "cross", "dev"} <= set(report.shown_texts("ndcg@10"))
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


def test_best_iteration_on_dev_and_models_that_load(finished_run):
    from sentence_transformers import CrossEncoder, SentenceTransformer

    from bicross.summary import best_iterations

    root, _, proc = finished_run
    res = root / "results" / "tiny"
    manifest = json.loads((res / "best" / "manifest.json").read_text())
    assert (manifest["split"], manifest["metric"]) == ("dev", "ndcg@10")  # validation.metric, auto
    best = best_iterations(pq.read_table(res / "metrics.parquet"), "dev", "ndcg@10")
    assert {e: (m["iteration"], m["value"]) for e, m in manifest["models"].items()} == best
    assert set(best) == {"bi", "cross"}
    for encoder, entry in manifest["models"].items():
        assert f"best {encoder} on dev: iteration {entry['iteration']}" in proc.stdout
        if entry["iteration"] >= 1:
            assert entry["model"] == f"results/tiny/iter{entry['iteration']}/{encoder}/model"
    bi = manifest["models"]["bi"]
    if bi["link"]:  # bi-encoder 0 is the local tiny model here: it has a folder to link too
        assert SentenceTransformer(str(res / "best" / bi["link"])).encode(["a b c"]).shape == (1, 32)
    assert CrossEncoder(str(res / "best" / manifest["models"]["cross"]["link"])).predict([("a", "b")]).shape == (1,)
    assert "the best models:" in proc.stdout


def test_the_filter_denoises_from_iteration_2_and_is_reported(finished_run):
    root, _, proc = finished_run
    res = root / "results" / "tiny"
    first = json.loads((res / "iter1" / "mine" / "filter.json").read_text())
    second = json.loads((res / "iter2" / "mine" / "filter.json").read_text())
    assert first["teacher"] is None and "dropped_margin" not in first  # no cross-encoder before iteration 1
    assert second["teacher"] == "cross-encoder 1" and second["scale"] == "sigmoid(logit)"
    scores = pq.read_table(res / "iter2" / "mine" / "cross-scores.parquet")
    assert scores.num_rows and second["candidates"] > 0
    assert second["candidates"] >= second["dropped_max_score"] + second["dropped_margin"]
    assert "mining filter, iteration 2 (cross-encoder 1, sigmoid(logit)): dropped" in proc.stdout
    checks = (res / "report" / "checks.tsv").read_text()
    assert "mining filter, iteration 2" in checks and "mining filter, iteration 1: none" in checks
    log = (res / "logs" / "mine_negatives" / "iter2.log").read_text()
    assert "window candidates" in log


def test_changes_are_tested_and_reported(finished_run):
    root, _, proc = finished_run
    res = root / "results" / "tiny"
    changes = pq.read_table(res / "changes.parquet").to_pylist()
    assert {(c["split"], c["encoder"], c["iteration"], c["base_encoder"], c["base_iteration"]) for c in changes
            if c["split"] == "test"} == {("test", "bi", 1, "bi", 0), ("test", "bi", 2, "bi", 1),
                                         ("test", "bi", 2, "bi", 0), ("test", "cross", 1, "bi", 0),
                                         ("test", "cross", 2, "bi", 1), ("test", "cross", 2, "bi", 0)}
    assert all(c["n"] == 6 and 0 < c["p"] <= 1 and c["low"] <= c["difference"] <= c["high"] for c in changes)
    assert "p=" in proc.stdout and "paired randomisation test" in proc.stdout
    tsv = (res / "report" / "changes.tsv").read_text().splitlines()
    assert len(tsv) == len(changes) + 1 and tsv[0].startswith("split\tencoder\titeration\tvs_encoder")
    assert planned_jobs(snakemake(root, root / "config.yaml", "-n")) == {}


def test_write_best_links_the_chosen_folders_and_prefers_the_earlier_on_a_tie(tmp_path):
    from bicross.best import write_best
    from bicross.errors import ConfigError
    from bicross.summary import write_metrics

    rows = [("bi", 0, 0.50), ("bi", 1, 0.60), ("bi", 2, 0.60), ("cross", 1, 0.70), ("cross", 2, 0.65),
            ("cross-supervised", 0, 0.9)]
    paths = []
    for i, (encoder, k, value) in enumerate(rows):
        path = tmp_path / f"{i}.json"
        path.write_text(json.dumps({"encoder": encoder, "iteration": k, "split": "dev",
                                    "metrics": {"ndcg@10": value, "num_queries": 6}}))
        paths.append(str(path))
    write_metrics(paths, tmp_path / "metrics.parquet")
    models = {"bi": ["hub/model-name", str(tmp_path / "iter1"), str(tmp_path / "iter2")],
              "cross": [None, str(tmp_path / "c1"), str(tmp_path / "c2")]}
    for folder in ("iter1", "iter2", "c1", "c2"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "name").write_text(folder)
    manifest = write_best(tmp_path / "metrics.parquet", tmp_path / "best", split="dev", metric="ndcg@10",
                          models=models)
    assert {e: (m["iteration"], m["link"]) for e, m in manifest["models"].items()} == {
        "bi": (1, "bi"), "cross": (1, "cross")}  # the supervised baseline is no loop model
    assert (tmp_path / "best" / "bi" / "name").read_text() == "iter1"  # the tie with iteration 2: the earlier
    assert not (tmp_path / "best" / "bi").readlink().is_absolute()
    assert json.loads((tmp_path / "best" / "manifest.json").read_text()) == manifest
    (tmp_path / "metrics.parquet").rename(tmp_path / "m.parquet")
    write_metrics(paths[:1], tmp_path / "metrics.parquet")  # only bi-encoder 0: a hub name, no link
    assert write_best(tmp_path / "metrics.parquet", tmp_path / "best", split="dev", metric="ndcg@10",
                      models=models)["models"] == {"bi": {"iteration": 0, "value": 0.5, "model": "hub/model-name",
                                                          "link": None}}
    assert not (tmp_path / "best" / "bi").exists()
    with pytest.raises(ConfigError, match="no such metric on split 'dev'.*it has ndcg@10, num_queries"):
        write_best(tmp_path / "metrics.parquet", tmp_path / "best", split="dev", metric="mrr@10", models=models)
