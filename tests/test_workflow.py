"""The real workflow, end to end, on a tiny random model and tiny BEIR data."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from workflow_utils import planned_jobs, snakemake, tiny_retrieval_config, write_config


@pytest.fixture
def tiny_config(tmp_path, tiny_model, tiny_beir):
    return tiny_retrieval_config(tiny_model, tiny_beir, shards=3, eval_splits=["train", "test"])


def test_pipeline_runs_and_reruns_only_what_changed(tmp_path, tiny_config):
    cfg = write_config(tmp_path / "config.yaml", tiny_config)
    first = snakemake(tmp_path, cfg)
    res = tmp_path / "results" / "tiny"
    assert "bicross metrics" in first.stdout  # the end-of-run table
    metrics = pq.read_table(res / "metrics.parquet").to_pylist()
    assert {(m["iteration"], m["encoder"], m["split"]) for m in metrics} == {(0, "bi", "train"), (0, "bi", "test")}
    assert {m["metric"] for m in metrics} >= {"mrr@10", "ndcg@10", "map"}
    run = pq.read_table(res / "iter0" / "bi" / "run" / "test.parquet")
    assert run.num_rows == 8 * 20 and run.column("rank").to_pylist()[:3] == [1, 2, 3]
    assert len(list((res / "iter0" / "bi" / "embeddings").glob("shard-*.parquet"))) == 3
    assert "encoded" in (res / "logs" / "encode_corpus" / "iter0-shard0.log").read_text()
    assert not [p for p in res.rglob(".*") if ".snakemake" not in p.parts]  # no temporary left behind

    assert planned_jobs(snakemake(tmp_path, cfg, "-n")) == {}  # a second run does nothing

    shard_mtime = (res / "iter0" / "bi" / "embeddings" / "shard-0.parquet").stat().st_mtime_ns
    tiny_config["retrieve"]["depth"] = 10
    cfg = write_config(tmp_path / "config.yaml", tiny_config)
    assert planned_jobs(snakemake(tmp_path, cfg, "-n")) == {
        "retrieve": 2, "evaluate_bi": 2, "summarize": 1, "report_assets": 1, "all": 1}
    snakemake(tmp_path, cfg)
    assert pq.read_table(res / "iter0" / "bi" / "run" / "test.parquet").num_rows == 8 * 10
    assert (res / "iter0" / "bi" / "embeddings" / "shard-0.parquet").stat().st_mtime_ns == shard_mtime

    # an edited qrels file prepares, tokenizes, encodes and searches its split again, and no other
    qrels = tiny_config["dataset"]["path"] + "/qrels/test.tsv"
    with open(qrels, "a") as f:
        f.write("q12\td13\t0\n")
    assert planned_jobs(snakemake(tmp_path, cfg, "-n")) == {
        "prepare_split": 1, "tokenize_queries": 1, "encode_queries": 1, "retrieve": 1, "evaluate_bi": 1,
        "summarize": 1, "report_assets": 1, "all": 1}


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda c: c["encode"].update(batchsize=3), "batchsize"),
        (lambda c: c["retrieve"].update(depth="many"), "depth"),
        (lambda c: c.update(iteratons=2), "iteratons"),
        (lambda c: c.update(iterations=1, mine={"filter_teacher": "cross"}), "mine.max_score or mine.relative_margin"),
        (lambda c: c["evaluate"].update(select_split="nosuch"), "evaluate.select_split 'nosuch'"),
    ],
)
def test_bad_config_names_the_key(tmp_path, tiny_config, change, named):
    change(tiny_config)
    proc = snakemake(tmp_path, write_config(tmp_path / "config.yaml", tiny_config), "-n", check=False)
    assert proc.returncode != 0
    assert named in proc.stdout + proc.stderr


def test_an_unknown_config_key_is_one_short_message(tmp_path, tiny_config):
    """The key, where it sits and the closest known key: not the schema and the config after it."""
    tiny_config["encode"]["batchsize"] = 3
    proc = snakemake(tmp_path, write_config(tmp_path / "config.yaml", tiny_config), "-n", check=False)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "config key 'batchsize' in encode is not known; did you mean 'batch_size'?" in out
    assert "Failed validating" not in out and len(out.splitlines()) < 10, out


def test_bad_data_stops_with_file_and_line(tmp_path, tiny_config, tiny_beir):
    with open(tiny_beir / "corpus.jsonl", "a") as f:
        f.write('{"_id": "broken", "text": \n')
    proc = snakemake(tmp_path, write_config(tmp_path / "config.yaml", tiny_config), check=False)
    assert proc.returncode != 0
    log = (tmp_path / "results" / "tiny" / "logs" / "prepare_corpus.log").read_text()
    assert "corpus.jsonl, line 61" in log
    assert not (tmp_path / "results" / "tiny" / "data" / "corpus.parquet").exists()


def planned_inputs(proc, output: str) -> str:
    """The `input:` line of the dry-run job that writes `output`."""
    for block in (proc.stdout + proc.stderr).split("\nrule ")[1:]:
        if f"output: {output}" in block:
            return next(line for line in block.splitlines() if line.strip().startswith("input:"))
    raise AssertionError(f"no planned job writes {output}")


def test_each_models_init_follows_its_iterations_override(tmp_path, tiny_model, tiny_beir):
    from workflow_utils import tiny_loop_config

    config = tiny_loop_config(tiny_model, tiny_beir)
    config["overrides"] = {"cross_encoder": {"init": ["fresh", "warm"]}, "distill": {"init": ["warm", "fresh"]}}
    config["cross_encoder"]["init"] = "fresh"
    proc = snakemake(tmp_path, write_config(tmp_path / "config.yaml", config), "-n")
    assert "results/tiny/iter1/cross/model" in planned_inputs(proc, "results/tiny/iter2/cross/model")
    assert "/model" not in planned_inputs(proc, "results/tiny/iter2/bi/model")  # fresh: from the configured model


def test_an_override_of_a_key_read_once_is_refused(tmp_path, tiny_config):
    tiny_config["overrides"] = {"cross_encoder": {"rerank_depth": [5, 10]}}
    proc = snakemake(tmp_path, write_config(tmp_path / "config.yaml", tiny_config), "-n", check=False)
    assert proc.returncode != 0
    assert "overrides.cross_encoder names ['rerank_depth']: read once for the whole run" in proc.stdout + proc.stderr


def test_planning_a_run_never_imports_torch(tmp_path, tiny_model, tiny_beir):
    """Snakemake reads every training recipe's hyperparameters while it parses the Snakefile; torch (about
    2 s to import) must stay out of that process, so a dry run, the DAG and --report stay quick."""
    import importlib.util
    import subprocess
    import sys

    from workflow_utils import REPO, tiny_loop_config

    spec = importlib.util.spec_from_file_location("plan", REPO / "bench" / "plan.py")  # bench/plan.py's probe
    plan = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plan)
    cfg = write_config(tmp_path / "config.yaml", tiny_loop_config(tiny_model, tiny_beir))
    _, out, err = plan.plan_once(cfg, tmp_path)  # a failed plan stops with snakemake's error
    assert "train_cross" in out and "distill_bi" in out  # it planned the training jobs
    assert "torch imported: False" in err, err[-2000:]

    every_recipe = ("import sys\nimport bicross.train as t\nfor name in t.RECIPES: t.recipe(name)\n"
                    "print('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", every_recipe], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"
