"""Run the real Snakemake workflow in a temporary directory and read what it planned."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def snakemake(workdir: Path, configfile: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir),
           "--configfile", str(configfile), "--cores", "2", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=workdir)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}")
    return proc


def planned_jobs(proc: subprocess.CompletedProcess) -> dict[str, int]:
    """The `Job stats` table of a (dry) run: rule -> count, without `total`."""
    text = proc.stdout + proc.stderr
    if "Nothing to be done" in text:
        return {}
    block = text.split("Job stats:", 1)[1]
    jobs = {}
    for line in block.splitlines()[3:]:
        m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if not m:
            break
        jobs[m.group(1)] = int(m.group(2))
    jobs.pop("total", None)
    return jobs


def tiny_retrieval_config(model, beir, *, shards: int, eval_splits: list[str]) -> dict:
    """Retrieval only (iterations 0) on the tiny model and tiny BEIR data of conftest.py."""
    return {
        "experiment": "tiny",
        "iterations": 0,
        "dataset": {"format": "beir", "path": str(beir), "splits": ["train", "test"]},
        "bi_encoder": {"model": str(model)},
        "tokenize": {"query_max_length": 16, "doc_max_length": 48},
        "encode": {"batch_size": 8, "precision": "fp32", "shards": shards},
        "retrieve": {"depth": 20},
        "evaluate": {"splits": eval_splits},
    }


def tiny_loop_config(model, beir) -> dict:
    """The whole loop (2 iterations, warm cross-encoder, a per-iteration learning rate) on the tiny model
    and tiny BEIR data of conftest.py."""
    return {
        "experiment": "tiny", "iterations": 2,
        "dataset": {"format": "beir", "path": str(beir), "splits": ["train", "test"]},
        "bi_encoder": {"model": str(model)},
        "tokenize": {"query_max_length": 16, "doc_max_length": 48},
        "encode": {"batch_size": 8, "precision": "fp32", "shards": 2},
        "retrieve": {"depth": 20},
        "mine": {"rank_start": 2, "rank_end": 20, "negatives_per_query": 4},
        "cross_encoder": {"model": str(model), "init": "warm", "train_group_size": 4, "batch_size": 2,
                          "epochs": 1, "max_length": 64, "precision": "fp32", "rerank_depth": 10,
                          "teacher_depth": 8},
        "distill": {"group_size": 4, "batch_size": 4, "epochs": 1, "precision": "fp32"},
        "overrides": {"cross_encoder": {"learning_rate": [5.0e-5, 3.0e-5]}},
    }
