"""A tiny 2-iteration loop with a dev split and denoised mining: the best iteration chosen on dev, best/
names models that load, the mining filter ran from iteration 2 on and is reported."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from workflow_utils import planned_jobs, snakemake, tiny_loop_config, write_config


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    from conftest import save_tiny_bi_encoder, write_tiny_beir

    root = tmp_path_factory.mktemp("best")
    model = save_tiny_bi_encoder(root / "model")
    beir = write_tiny_beir(root / "beir", train=12, test=12)
    lines = (beir / "qrels" / "test.tsv").read_text().splitlines()
    (beir / "qrels" / "test.tsv").write_text("\n".join(lines[:7]) + "\n")  # header + 6 test queries
    (beir / "qrels" / "dev.tsv").write_text("\n".join(lines[:1] + lines[7:]) + "\n")  # the other 6: dev
    config = tiny_loop_config(model, beir)
    config["dataset"]["splits"] = ["train", "dev", "test"]
    config["mine"].update(filter_teacher="cross", max_score=0.99, relative_margin=0.05)
    cfg = write_config(root / "config.yaml", config)
    proc = snakemake(root, cfg)
    return root, config, proc


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
