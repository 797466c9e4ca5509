"""Reruns after failures: a stage that failed on a changed input runs again (and fails again) until the
input is fixed; Snakemake never reports success over it."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import REPO
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
    log = res / "logs" / "prepare_corpus.log"

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
    log = res / "logs" / "prepare_split" / "test.log"
    _failed(snakemake(tmp_path, cfg, check=False), log, "test.tsv, line 10: expected an integer relevance")
    assert planned_jobs(snakemake(tmp_path, cfg, "-n")).get("prepare_split") == 1

    qrels.write_text(good_qrels)  # fixed: the split's data stage and everything after it run again
    jobs = planned_jobs(snakemake(tmp_path, cfg, "-n"))
    assert {"prepare_split", "tokenize_queries", "encode_queries", "retrieve", "evaluate_bi", "summarize"} <= set(jobs)
    assert (res / "metrics.parquet").stat().st_mtime_ns == metrics_mtime  # the old ones, never rewritten


@pytest.mark.slow  # the same mechanism as the data stage's test above, for task sts
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


# --- the signal matrix: every kind of interruption during train_cross, then a rerun --------------------

STEPS, EVERY = 120, 25  # checkpoint_every: the kill-type cases lose less than this


def _matrix_config(model, cross_init, beir) -> dict:
    config = tiny_retrieval_config(model, beir, shards=1, eval_splits=["test"])
    config.update(iterations=1, mine={"rank_start": 2, "rank_end": 20, "negatives_per_query": 4},
                  validation={"split": None})
    config["cross_encoder"] = {"model": str(cross_init), "train_group_size": 4, "batch_size": 2, "max_steps": STEPS,
                               "checkpoint_every": EVERY, "log_every": 1, "max_length": 64, "precision": "fp32",
                               "rerank_depth": 10, "teacher_depth": 8}
    return config


@pytest.fixture(scope="module")
def before_training(tmp_path_factory):
    """A run up to cross-encoder 1's training (mined negatives, tokens), and that training uninterrupted."""
    from conftest import save_tiny_bi_encoder, save_tiny_cross_init, write_tiny_beir

    root = tmp_path_factory.mktemp("matrix")
    shared = root / "shared"
    config = _matrix_config(save_tiny_bi_encoder(shared / "bi"), save_tiny_cross_init(shared / "cross"),
                            write_tiny_beir(shared / "beir"))
    work = root / "prepared"
    work.mkdir()
    cfg = write_config(root / "config.yaml", config)
    snakemake(work, cfg, "--omit-from", "train_cross")
    reference = root / "reference"
    shutil.copytree(work, reference, symlinks=True)
    snakemake(reference, cfg, MODEL)
    assert not (reference / f"{MODEL}.checkpoints").exists()  # removed once Snakemake recorded the model
    return work, cfg, _weights(reference / MODEL)


MODEL = "results/tiny/iter1/cross/model"
TRAIN_LOG = "results/tiny/logs/train_cross/iter1.log"


def _weights(model):
    from safetensors.torch import load_file

    return load_file(model / "model.safetensors")


def _trainers(pid) -> list:
    """The training process(es) under Snakemake `pid`: `python -m bicross.train...`, not the launcher."""
    import psutil

    found = []
    for p in psutil.Process(pid).children(recursive=True):
        with contextlib.suppress(psutil.Error):
            cmd = p.cmdline()
            if len(cmd) > 2 and cmd[1] == "-m" and cmd[2].startswith("bicross.train"):
                found.append(p)
    return found


def _wait_for(path, text, proc, timeout=240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return
        assert proc.poll() is None, f"snakemake ended ({proc.returncode}) before {text!r} was logged"
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not in {path} after {timeout} s")


def _sigint_by_default() -> None:
    """A suite started in the background of a non-interactive shell (`nohup ... &`) ignores SIGINT, and so
    would Snakemake, which inherits it: then `kill -INT` does nothing and the case cannot be tested."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


CASES = ["sigint-to-snakemake", "sigint-to-the-group", "sigterm-to-the-trainer", "sigkill-to-the-trainer",
         "sigkill-to-the-group", "sigterm-to-snakemake"]


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
def test_an_interrupted_training_resumes_and_ends_with_the_weights_of_an_uninterrupted_one(
        tmp_path, before_training, case):
    """Interrupt train_cross once its first checkpoint is written, rerun, compare with the uninterrupted run.

    sigterm-to-snakemake: a graceful stop, the job ends and is recorded, nothing is left to rerun.
    sigint-to-snakemake (`kill -INT <snakemake>`): Snakemake waits for the job, which finishes but is never
    recorded; the kept final checkpoint makes the rerun train nothing. sigint-to-the-group (Ctrl-C) and
    sigterm-to-the-trainer (SLURM's time limit): the trainer stops after its step with a checkpoint.
    sigkill (the OOM killer; machine loss): the rerun resumes from the last periodic checkpoint."""
    prepared, cfg, reference = before_training
    work = tmp_path / "work"
    shutil.copytree(prepared, work, symlinks=True)
    log, model = work / TRAIN_LOG, work / MODEL
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(work), "--configfile", str(cfg),
           "--cores", "2", MODEL]
    proc = subprocess.Popen(cmd, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, preexec_fn=_sigint_by_default)
    try:
        _wait_for(log, f"checkpoint at step {EVERY} ", proc)
        if case.endswith("to-snakemake"):
            os.kill(proc.pid, signal.SIGTERM if case.startswith("sigterm") else signal.SIGINT)
        elif case.endswith("to-the-group"):
            os.killpg(proc.pid, signal.SIGKILL if case.startswith("sigkill") else signal.SIGINT)
        else:
            (trainer,) = _trainers(proc.pid)
            trainer.send_signal(signal.SIGKILL if case.startswith("sigkill") else signal.SIGTERM)
        out, _ = proc.communicate(timeout=300)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode != 0, out[-3000:]
    first = log.read_text(errors="replace")  # a tqdm bar cut by the signal may end mid-character
    if case == "sigterm-to-snakemake":  # a graceful stop: the running job ends and is recorded
        assert "Will exit after finishing currently running jobs" in out and f"trained {STEPS} steps" in first
        assert not (work / f"{MODEL}.checkpoints").exists()
        assert planned_jobs(snakemake(work, cfg, MODEL, "-n")) == {}
        got = _weights(model)
        assert all(torch.equal(got[k], reference[k]) for k in reference)
        return
    if case == "sigint-to-snakemake":
        assert f"trained {STEPS} steps" in first  # the job ran to its end ...
        assert sorted(p.name for p in (work / f"{MODEL}.checkpoints").iterdir()) == [f"step-{STEPS}"]
        resumed = STEPS  # ... and its final checkpoint stays, for the rerun Snakemake will make of it
    elif case.startswith("sigkill"):
        resumed = max(int(p.name.split("-")[1]) for p in (work / f"{MODEL}.checkpoints").glob("step-*"))
        assert resumed % EVERY == 0
    else:
        name = "SIGINT" if case.startswith("sigint") else "SIGTERM"
        stopped = re.search(rf"stopped by {name} after step (\d+) of {STEPS}", first)
        assert stopped, first[-3000:]
        resumed = int(stopped.group(1))
        assert EVERY <= resumed < STEPS

    if case == "sigkill-to-the-group":  # Snakemake died holding its lock: a rerun first lifts it
        assert "cannot be locked" in snakemake(work, cfg, MODEL, check=False).stderr
        snakemake(work, cfg, "--unlock")
    again = snakemake(work, cfg, MODEL)
    log_text = log.read_text(errors="replace")
    assert f"resuming from step {resumed} " in log_text, log_text[-3000:]
    assert f"trained {STEPS} steps ({STEPS - resumed} in this run)" in log_text
    got = _weights(model)
    assert got.keys() == reference.keys()
    assert all(torch.allclose(got[k], reference[k], atol=1e-6, rtol=0) for k in reference)
    assert not (work / f"{MODEL}.checkpoints").exists(), again.stdout[-2000:]
