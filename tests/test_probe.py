"""`bicross probe`: the probe's config, what it copies from the reused experiment, and the copies' age."""

from __future__ import annotations

import os

import pytest

from bicross.errors import ConfigError
from bicross.probe import parse_set, probe_config, reused_paths, seed_from


def test_set_values_keep_their_types():
    assert parse_set("cross_encoder.learning_rate=8e-5") == (["cross_encoder", "learning_rate"], 8e-5)
    assert parse_set("distill.epochs=3") == (["distill", "epochs"], 3)
    assert parse_set("sts.bi_loss=cosent") == (["sts", "bi_loss"], "cosent")
    assert parse_set("overrides.cross_encoder.epochs=[2, 1]") == (["overrides", "cross_encoder", "epochs"], [2, 1])
    assert parse_set("sts.augment={neighbours: 1}") == (["sts", "augment"], {"neighbours": 1})
    for bad in ("distill.epochs", "=3", "distill..epochs=3"):
        with pytest.raises(ConfigError, match="expected KEY.SUBKEY=VALUE"):
            parse_set(bad)


def test_probe_config_cuts_the_run_and_applies_the_changes():
    base = {"experiment": "stsb", "iterations": 3, "dataset": {"format": "stsb", "eval_sets": {"sts12": {}}},
            "evaluate": {"splits": ["dev", "test", "sts12"]}, "distill": {"epochs": 1}}
    cfg = probe_config(base, "p1", 1, ["distill.epochs=3", "sts.bi_loss=cosent"], ["dev", "test"])
    assert cfg["experiment"] == "p1" and cfg["iterations"] == 1
    assert cfg["evaluate"]["splits"] == ["dev", "test"] and "eval_sets" not in cfg["dataset"]
    assert cfg["distill"] == {"epochs": 3} and cfg["sts"] == {"bi_loss": "cosent"}
    assert base["iterations"] == 3 and "eval_sets" in base["dataset"]  # the base is left alone
    assert "eval_sets" in probe_config(base, "p2", 1, [], ["dev"], keep_eval_sets=True)["dataset"]
    with pytest.raises(ConfigError, match="'epochs' is not a section"):
        probe_config(base, "p3", 1, ["distill.epochs.x=1"], ["dev"])
    with pytest.raises(ConfigError, match="probe name 'a/b'"):
        probe_config(base, "a/b", 1, [], ["dev"])


def _experiment(root):
    """results/src with data, iterations 0-2 (iteration 1 with a cross-encoder) and run-level files,
    every file older than the last."""
    files = ["data/pairs/train.parquet", "iter0/bi/scores/train.parquet", "iter1/cross/model/w.bin",
             "iter1/cross/scores/train.parquet", "iter1/bi/model/w.bin", "iter1/metrics/bi-test.json",
             "iter2/cross/model/w.bin", "metrics.parquet", "changes.parquet", "best/manifest.json",
             "report/metrics.png", "logs/a.log"]
    for i, rel in enumerate(files):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rel)
        os.utime(path, (1_000_000 + 10 * i, 1_000_000 + 10 * i))
    return root


def test_reuse_copies_the_iterations_before_k_and_optionally_cross_k(tmp_path):
    src = _experiment(tmp_path / "src")
    assert [p.name for p in reused_paths(src, 1, "cross")] == ["data", "iter0"]
    assert [str(p.relative_to(src)) for p in reused_paths(src, 1, "bi")] == ["data", "iter0", "iter1/cross"]
    assert [p.name for p in reused_paths(src, 2, "cross")] == ["data", "iter0", "iter1"]
    with pytest.raises(ConfigError, match="iter3/cross does not exist"):
        reused_paths(src, 3, "bi")
    with pytest.raises(ConfigError, match="does not exist"):
        reused_paths(tmp_path / "nope", 1, "cross")


def test_copies_keep_their_order_but_move_after_outside_inputs(tmp_path):
    """A dataset touched after the reused run (a new machine, a fresh checkout) must not make Snakemake
    redo the copied stages: the oldest copy lands at `now`, and each copy stays younger than its inputs."""
    src = _experiment(tmp_path / "src")
    dst = tmp_path / "dst"
    now = 2_000_000_000.0
    assert seed_from(src, dst, 1, "bi", now=now) == 4
    got = {str(p.relative_to(dst)): p.stat().st_mtime for p in dst.rglob("*") if p.is_file()}
    assert sorted(got) == ["data/pairs/train.parquet", "iter0/bi/scores/train.parquet",
                           "iter1/cross/model/w.bin", "iter1/cross/scores/train.parquet"]
    assert now <= min(got.values()) and max(got.values()) < now + 1  # not hours into the future
    order = sorted(got, key=got.get)
    assert order == sorted(got, key=lambda rel: (src / rel).stat().st_mtime)
    assert len(set(got.values())) == 4
    assert (dst / "iter1" / "cross").stat().st_mtime == got["iter1/cross/scores/train.parquet"]
