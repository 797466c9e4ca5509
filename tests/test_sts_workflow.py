"""task: sts end to end on a tiny model: 2 Trans-Encoder iterations, the supervised baseline, and the
gold-label firewall (nothing that trains can see a gold train score)."""

from __future__ import annotations

import json
import random
import subprocess
import sys

import pyarrow.parquet as pq
import pytest
import yaml
from conftest import REPO, WORDS
from workflow_utils import planned_jobs, snakemake, write_config


def write_tiny_stsb(root, seed=0, sizes=(("train", 40), ("dev", 16), ("test", 16)), gold_offset=0.0):
    """STS Benchmark layout: genre, file, year, id, score, sentence1, sentence2 (some rows with 2 more columns)."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    for split, n in sizes:
        lines = []
        for i in range(n):
            a = " ".join(rng.sample(WORDS, 5))
            shared = rng.randint(0, 5)
            b = " ".join(a.split()[:shared] + rng.sample(WORDS, 5 - shared))
            score = min(5.0, shared + gold_offset)
            row = ["main-captions", "MSRvid", "2012test", f"{i:04d}", f"{score:.3f}", a, b]
            if i % 7 == 0:
                row += ["licence", "source"]
            lines.append("\t".join(row))
        (root / f"sts-{split}.csv").write_text("\n".join(lines) + "\n")
    return root


def sts_config(model, data, **extra):
    config = {
        "experiment": "tinysts", "task": "sts", "iterations": 2,
        "dataset": {"format": "stsb", "path": str(data), "splits": ["train", "dev", "test"]},
        "bi_encoder": {"model": str(model)},
        "encode": {"batch_size": 8, "precision": "fp32"},
        "evaluate": {"splits": ["test"]},
        "cross_encoder": {"model": str(model), "batch_size": 8, "epochs": 1, "max_length": 32, "precision": "fp32"},
        "distill": {"batch_size": 8, "epochs": 1, "precision": "fp32"},
        "sts": {"max_length": 16, "supervised_baseline": True},
        # tiny random cross-encoders rarely beat their teacher: distil anyway, so distillation runs
        "validation": {"losing_teacher": "warn"},
    }
    config.update(extra)
    return config


@pytest.fixture(scope="module")
def sts_run(tmp_path_factory):
    from conftest import save_tiny_bi_encoder

    root = tmp_path_factory.mktemp("sts")
    model = save_tiny_bi_encoder(root / "model")
    data = write_tiny_stsb(root / "stsb")
    cfg = write_config(root / "config.yaml", sts_config(model, data))
    proc = snakemake(root, cfg)
    return root, proc


def test_two_sts_iterations_end_to_end(sts_run):
    root, proc = sts_run
    res = root / "results" / "tinysts"
    rows = pq.read_table(res / "metrics.parquet").to_pylist()
    seen = {(r["iteration"], r["encoder"], r["split"]) for r in rows if r["metric"] == "spearman"}
    expected = {(k, "bi", s) for k in range(3) for s in ("dev", "test")}
    expected |= {(k, "cross", s) for k in (1, 2) for s in ("dev", "test")}
    expected |= {(0, "cross-supervised", s) for s in ("dev", "test")}
    assert seen == expected  # dev is evaluated because sts.select_split names it
    assert "best bi on dev: iteration" in proc.stdout and "best cross on dev: iteration" in proc.stdout
    assert "TRANSDUCTIVE" not in proc.stdout
    for k in (1, 2):  # the teacher gate compared cross-encoder k with bi-encoder k-1 on dev (Spearman)
        gate = json.loads((res / f"iter{k}" / "gate" / "bi.json").read_text())
        metrics = {(r["iteration"], r["encoder"]): r["value"] for r in rows
                   if r["split"] == "dev" and r["metric"] == "spearman"}
        assert gate["split"] == "dev" and gate["metric"] == "spearman" and gate["decision"] == "distil"
        assert gate["teacher"] == pytest.approx(metrics[(k, "cross")], abs=1e-4)
        assert gate["student_score"] == pytest.approx(metrics[(k - 1, "bi")], abs=1e-4)
        assert gate["message"] in proc.stdout
    # the cross-encoder learns from both orders of every training pair
    training = json.loads((res / "iter1" / "cross" / "model" / "training.json").read_text())
    assert training["train_pairs"] == 40 and training["examples_per_epoch"] == 80
    from sentence_transformers import CrossEncoder, SentenceTransformer

    assert SentenceTransformer(str(res / "iter2" / "bi" / "model")).encode(["a b"]).shape == (1, 32)
    assert CrossEncoder(str(res / "iter2" / "cross" / "model")).predict([("a", "b")]).shape == (1,)


def _training_ancestors(root, cfg):
    """Every file the training jobs (train_cross, distill_bi) of the loop depend on, transitively."""
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(root), "--configfile",
           str(cfg), "--forceall", "--dag", "--cores", "1"]
    dag = subprocess.run(cmd, capture_output=True, text=True, cwd=root, check=True).stdout
    return dag


def test_loss_curves_and_cards_of_the_sts_kinds(sts_run):
    """task sts: one loss plot per Trans-Encoder direction, the supervised baseline a line of the
    cross-encoders' plot; its card holds its own metrics (encoder cross-supervised)."""
    from bicross.losscurve import curves

    res = sts_run[0] / "results" / "tinysts"
    assert "loss curves: results/tinysts/report/loss-sts-cross.png, results/tinysts/report/loss-sts-bi.png" \
        in sts_run[1].stdout
    models = [res / "iter1" / "cross" / "model", res / "iter2" / "cross" / "model", res / "supervised" / "cross" / "model"]
    assert [c.label for c in curves(models)] == ["iteration 1", "iteration 2", "supervised"]
    card = (res / "supervised" / "cross" / "README.md").read_text()
    assert "Metrics of `cross-supervised`" in card and "| test | spearman |" in card
    assert "**Recipe:** `sts-cross`" in card and "sts:" in card  # its config sections: cross_encoder and sts


def test_gold_train_scores_cannot_reach_training(sts_run, tmp_path):
    root, _ = sts_run
    res = root / "results" / "tinysts"
    unlabelled = pq.read_table(res / "data" / "pairs" / "unlabelled.parquet")
    assert unlabelled.column_names == ["pair_id", "text_a", "text_b"]
    # the loop's training jobs read only the unlabelled pairs and teacher scores
    for log in ("train_cross/iter1.log", "train_cross/iter2.log", "distill_bi/iter1.log"):
        text = (res / "logs" / log).read_text()
        assert "data/pairs/unlabelled.parquet" in text and "data/pairs/train.parquet" not in text
    # every gold train score changed: the training pairs come out byte-identical
    other = tmp_path / "other"
    model = root / "model"
    data = write_tiny_stsb(other / "stsb", gold_offset=1.5)
    cfg = write_config(other / "config.yaml", sts_config(model, data))
    snakemake(other, cfg, "results/tinysts/data/pairs/unlabelled.parquet")
    assert (pq.read_table(other / "results/tinysts/data/pairs/train.parquet").column("gold").to_pylist()
            != pq.read_table(res / "data/pairs/train.parquet").column("gold").to_pylist())
    assert ((other / "results/tinysts/data/pairs/unlabelled.parquet").read_bytes()
            == (res / "data/pairs/unlabelled.parquet").read_bytes())


@pytest.mark.parametrize("example", ["stsb.yaml", "stsb-mutual.yaml"])
def test_the_example_configs_train_on_unlabelled_pairs_only(example, tmp_path):
    """The shipped sts configs on the real STS-B: every training job (both families) reads the gold-free
    pairs and teacher scores, never a split's pairs file with its gold column."""
    from conftest import shared_data

    shared_data("stsbenchmark")  # skips without ../shared/data
    if example == "stsb-mutual.yaml":
        from conftest import installed_mpnet

        installed_mpnet()  # skips with the install command when MPNet is not installed
    cfg = yaml.safe_load((REPO / "config" / "examples" / example).read_text())
    assert cfg["sts"]["train_splits"] == ["train"] and not cfg["sts"].get("supervised_baseline")
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(REPO), "--configfile",
           str(REPO / "config" / "examples" / example), "--config", f"experiment=firewall-{tmp_path.name}",
           "-n", "--forceall", "--nolock", "--cores", "1"]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, check=True).stdout
    jobs = [block for block in out.split("\nrule ")[1:] if block.startswith(("train_cross:", "distill_bi:"))]
    assert len(jobs) == cfg["iterations"] * 2 * (2 if cfg["sts"].get("mutual") else 1)
    for block in jobs:
        inputs = next(line for line in block.splitlines() if line.strip().startswith("input:"))
        assert "data/pairs/unlabelled.parquet" in inputs
        assert not any(f"data/pairs/{s}.parquet" in inputs for s in cfg["dataset"]["splits"]), inputs


def test_train_scores_reach_only_the_supervised_baseline(sts_run):
    root, _ = sts_run
    dag = _training_ancestors(root, root / "config.yaml")
    edges = [line for line in dag.splitlines() if "->" in line]
    labels = dict(line.strip().split("[", 1) for line in dag.splitlines() if "label" in line and "->" not in line)

    def rule(node):
        return labels.get(node, "")

    gold_users = {rule(dst) for line in edges for src, dst in [line.strip().rstrip(";").split(" -> ")]
                  if "gold_labels" in rule(src)}
    assert gold_users and all("train_cross_supervised" in label for label in gold_users)


def test_bi_self_weight_mixes_in_the_bi_encoders_own_scores(sts_run, tmp_path):
    """sts.bi_self_weight w: bi-encoder k learns (1 - w) * cross-encoder k + w * bi-encoder k-1."""
    import shutil

    import numpy as np
    import yaml

    root = tmp_path / "copy"
    shutil.copytree(sts_run[0], root)  # the finished run, left as it was for the other tests
    config = yaml.safe_load((root / "config.yaml").read_text())
    config["sts"]["bi_self_weight"] = 0.25
    cfg = write_config(root / "config-self.yaml", config)
    snakemake(root, cfg, "results/tinysts/iter1/bi/model")
    res = root / "results" / "tinysts"
    log = (res / "logs" / "distill_bi" / "iter1.log").read_text()
    cross = pq.read_table(res / "iter1/cross/scores/unlabelled.parquet").to_pydict()
    own = pq.read_table(res / "iter0/bi/scores/unlabelled.parquet").to_pydict()
    by_id = dict(zip(own["pair_id"], own["score"], strict=True))
    mixed = [0.75 * c + 0.25 * by_id[p] for p, c in zip(cross["pair_id"], cross["score"], strict=True)]
    assert f"iter1/cross/scores/unlabelled.parquet, results/tinysts/iter0/bi/scores/unlabelled.parquet: mean {np.mean(mixed):.3f}" in log
    training = json.loads((res / "iter1/bi/model/training.json").read_text())
    assert training["hparams"]["label_weights"] == [0.75, 0.25]


def _loss_changed(sts_run, tmp_path, sts_change, model, loss, before_loss):
    """Rerun a copy of the tiny run with `sts_change` up to iteration 1's `model` ("cross" or "bi"); check
    that it trained with `loss` (the original with `before_loss`) and that its weights differ."""
    import shutil

    import torch
    import yaml
    from safetensors.torch import load_file

    root = tmp_path / "copy"
    shutil.copytree(sts_run[0], root)
    config = yaml.safe_load((root / "config.yaml").read_text())
    config["sts"].update(sts_change)
    snakemake(root, write_config(root / "config-loss.yaml", config), f"results/tinysts/iter1/{model}/model")
    res, before = root / "results" / "tinysts", sts_run[0] / "results" / "tinysts"
    assert json.loads((before / f"iter1/{model}/model/training.json").read_text())["hparams"]["loss"] == before_loss
    new, old = (load_file(next((d / f"iter1/{model}/model").glob("*.safetensors"))) for d in (res, before))
    assert any(not torch.equal(new[k], old[k]) for k in old)
    training = json.loads((res / f"iter1/{model}/model/training.json").read_text())
    assert training["hparams"]["loss"] == loss
    return training["hparams"]


def test_bi_loss_cosent_reaches_the_distillation(sts_run, tmp_path):
    """sts.bi_loss: cosent trains bi-encoder k with the ranking loss, and changes its weights."""
    hparams = _loss_changed(sts_run, tmp_path, {"bi_loss": "cosent"}, "bi", "cosent", "mse")
    assert hparams["cosent_scale"] == 20


def test_cross_loss_cosent_reaches_the_cross_encoder(sts_run, tmp_path):
    """sts.cross_loss: cosent trains cross-encoder k with the ranking loss on its sigmoid scores."""
    hparams = _loss_changed(sts_run, tmp_path, {"cross_loss": "cosent", "cosent_scale": 10}, "cross", "cosent", "bce")
    assert hparams["cosent_scale"] == 10


def test_augment_trains_on_new_pairs_of_the_training_sentences(sts_run, tmp_path):
    """sts.augment: both encoders of the loop learn from the unlabelled pairs plus neighbour and random
    pairs of the same sentences; no other split's text gets in."""
    import shutil

    import yaml

    root = tmp_path / "copy"
    shutil.copytree(sts_run[0], root)
    config = yaml.safe_load((root / "config.yaml").read_text())
    config["sts"]["augment"] = {"neighbours": 1, "random": 1}
    snakemake(root, write_config(root / "config-aug.yaml", config), "results/tinysts/iter1/bi/model")
    res = root / "results" / "tinysts"
    pairs = pq.read_table(res / "data/pairs/augmented.parquet").to_pydict()
    base = pq.read_table(res / "data/pairs/unlabelled.parquet").to_pydict()
    assert pairs["pair_id"][:40] == base["pair_id"]
    new = [i for i in pairs["pair_id"] if i.startswith("aug:")]
    assert any(i.startswith("aug:nn:") for i in new) and any(i.startswith("aug:rand:") for i in new)
    sentences = set(base["text_a"]) | set(base["text_b"])
    assert set(pairs["text_a"]) | set(pairs["text_b"]) <= sentences
    for rule, encoder in (("train_cross", "cross"), ("distill_bi", "bi")):
        assert "data/pairs/augmented.parquet" in (res / "logs" / rule / "iter1.log").read_text()
        training = json.loads((res / "iter1" / encoder / "model" / "training.json").read_text())
        assert training["train_pairs"] == len(pairs["pair_id"]) > 40


def test_a_new_evaluation_set_is_scored_and_nothing_retrains(sts_run, tmp_path):
    """Adding an eval set to a finished run plans its preparation, the scoring of the evaluated splits by
    every encoder and their evaluation: no training, no rescoring of the training pairs."""
    import yaml

    root, _ = sts_run
    extra = tmp_path / "sts-extra"
    extra.mkdir()
    (extra / "a.tsv").write_text("4.0\tthe cat sat\tthe cat sat down\n1.0\ta dog ran\tthe sky is blue\n"
                                 "\tunlabelled one\tunlabelled two\n2.5\ta man sings\ta man talks\n")
    config = yaml.safe_load((root / "config.yaml").read_text())
    config["dataset"]["eval_sets"] = {"extra": {"format": "pairs_tsv", "path": str(extra), "files": ["*.tsv"]}}
    config["evaluate"]["splits"] = ["test", "extra"]
    proc = snakemake(root, write_config(tmp_path / "config-extra.yaml", config), "-n")
    jobs = planned_jobs(proc)
    assert jobs.pop("prepare_pairs") == 1 and "split=extra" in proc.stdout
    assert jobs == {"score_pairs_bi": 3, "score_pairs_cross": 2, "score_pairs_supervised": 1, "evaluate_sts": 5,
                    "evaluate_supervised": 1, "summarize": 1, "select_best": 1, "report_assets": 1,
                    "model_cards": 1, "all": 1}  # the cards hold the new set's metrics; nothing retrains


def test_probe_retrains_only_what_the_change_touches(sts_run, tmp_path):
    """`bicross probe --reuse --from bi` on a copy of the finished run whose dataset was touched since
    (a fresh checkout): only bi-encoder 1 trains again, with the change, and the JSON holds its metrics."""
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(sts_run[0], root)
    for path in (root / "stsb").iterdir():
        path.touch()  # newer than every result: without the copies' new age, the probe would redo it all
    cmd = [sys.executable, "-m", "bicross.cli", "probe", "p1", "--configfile", str(root / "config.yaml"),
           "--directory", str(root), "--reuse", "tinysts", "--from", "bi", "--set", "distill.learning_rate=1e-3",
           "--cores", "2"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout)
    assert set(out["metrics"]) == {"bi"} and set(out["metrics"]["bi"]) == {"dev", "test"}
    assert -100 <= out["metrics"]["bi"]["test"]["spearman"] <= 100
    assert set(out["job_seconds"]) == {"distill_bi/iter1", "score_pairs_bi/iter1", "score_split_bi/iter1-dev"}
    log = (root / "results" / "p1.probe.log").read_text()
    assert "prepare_pairs" not in log and "train_cross" not in log
    res = root / "results" / "p1"
    assert json.loads((res / "iter1/bi/model/training.json").read_text())["hparams"]["learning_rate"] == 1e-3
    assert not (res / "iter2").exists()
    again = subprocess.run(cmd, capture_output=True, text=True)
    assert again.returncode == 2 and "pass --resume" in again.stderr


@pytest.mark.slow
def test_mutual_distillation_averages_two_families(tmp_path):
    from conftest import save_tiny_bi_encoder

    model_a = save_tiny_bi_encoder(tmp_path / "model_a", seed=0)
    model_b = save_tiny_bi_encoder(tmp_path / "model_b", seed=1)
    data = write_tiny_stsb(tmp_path / "stsb", sizes=(("train", 24), ("dev", 12), ("test", 12)))
    config = sts_config(model_a, data, iterations=1)
    config["sts"] = {"max_length": 16, "mutual": {"bi_model": str(model_b), "cross_model": str(model_b),
                                                  "cross_weights": [1, 3]}}
    proc = snakemake(tmp_path, write_config(tmp_path / "config.yaml", config))
    res = tmp_path / "results" / "tinysts"
    rows = pq.read_table(res / "metrics.parquet").to_pylist()
    assert {(r["iteration"], r["encoder"]) for r in rows} == {
        (0, "bi"), (0, "bi_b"), (1, "bi"), (1, "bi_b"), (1, "cross"), (1, "cross_b")}
    assert "best cross_b on dev" in proc.stdout
    # each direction's labels are both families' scores: the trainers were given both files
    for log, teachers in (("train_cross/iter1.log", ("iter0/bi/scores", "iter0/bi_b/scores")),
                          ("train_cross/iter1_b.log", ("iter0/bi/scores", "iter0/bi_b/scores")),
                          ("distill_bi/iter1.log", ("iter1/cross/scores", "iter1/cross_b/scores")),
                          ("distill_bi/iter1_b.log", ("iter1/cross/scores", "iter1/cross_b/scores"))):
        text = (res / "logs" / log).read_text()
        assert all(f"{t}/unlabelled.parquet" in text for t in teachers), log
    hp = json.loads((res / "iter1" / "bi_b" / "model" / "training.json").read_text())["hparams"]
    assert hp["model"] == str(model_b)
    # sts.mutual.cross_weights [1, 3]: the bi-encoders' labels and the gate weigh cross-encoder_b 3:1
    assert hp["label_weights"] == [0.25, 0.75]
    gate = json.loads((res / "iter1" / "gate" / "bi_b.json").read_text())
    assert gate["teacher_weights"] == [0.25, 0.75] and "weighted mean 0.25/0.75" in gate["message"]
    # a loss curve per family in each kind's plot, a card per family's model
    from bicross.losscurve import curves

    found = curves([res / "iter1" / f"{role}{fam}" / "model" for role in ("cross", "bi") for fam in ("", "_b")])
    assert [(c.recipe, c.label) for c in found] == [("sts-cross", "iteration 1"), ("sts-cross", "iteration 1 (_b)"),
                                                     ("sts-bi", "iteration 1"), ("sts-bi", "iteration 1 (_b)")]
    assert all((res / "report" / f"loss-{kind}.png").is_file() for kind in ("sts-cross", "sts-bi"))
    card = (res / "iter1" / "cross_b" / "README.md").read_text()
    assert "cross-encoder_b 1" in card and "| dev | spearman |" in card and "family `_b`" in card


def test_an_evaluation_set_without_labels_stops_when_prepared(tmp_path, tiny_model):
    """An eval set whose score fields are all empty is refused by prepare_pairs, naming the split and the
    file, before any model scores it (it used to pass, then score_pairs_bi died with an IndexError)."""
    data = write_tiny_stsb(tmp_path / "stsb")
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "a.tsv").write_text("\tthe cat sat\tthe cat sat down\n\ta dog ran\tthe sky is blue\n")
    config = sts_config(tiny_model, data, iterations=0, evaluate={"splits": ["test", "extra"]},
                        sts={"max_length": 16, "select_split": None})
    config["dataset"]["eval_sets"] = {"extra": {"format": "pairs_tsv", "path": str(extra), "files": ["*.tsv"]}}
    proc = snakemake(tmp_path, write_config(tmp_path / "config.yaml", config), check=False)
    assert proc.returncode == 1
    log = (tmp_path / "results" / "tinysts" / "logs" / "prepare_pairs" / "extra.log").read_text()
    assert f"{extra / 'a.tsv'}: expected gold scores for split extra" in log
    assert "IndexError" not in proc.stdout + proc.stderr
    assert not (tmp_path / "results" / "tinysts" / "iter0" / "bi" / "scores").exists()
