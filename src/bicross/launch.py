"""Start a training module under `accelerate launch`, with as many processes as the job has GPUs.

Snakemake passes the rule's `gpu` resource; with none the job trains in one CPU process (or, for
tests and CPU clusters, `processes` gloo processes). Mixed precision is the trainer's own choice
(`precision: auto`), so the launcher always says `--mixed_precision no`.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys

log = logging.getLogger("bicross.launch")


def free_port() -> int:
    """A free local TCP port, so concurrent trainings on one node don't collide on 29500."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def accelerate_command(module: str, args: list[str], gpus: int = 0, processes: int = 1) -> list[str]:
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port())]
    n = gpus if gpus > 0 else processes
    if n > 1:
        cmd += ["--multi_gpu", "--num_processes", str(n)]  # on a machine without GPUs: gloo on CPU
    else:
        cmd += ["--num_processes", "1"] + (["--cpu"] if gpus == 0 else [])
    return [*cmd, "-m", module, *args]


def launch(module: str, args: list[str], gpus: int = 0, processes: int = 1, log_path: str | None = None,
           threads: int | None = None) -> None:
    """Run the command to completion, appending its output to `log_path`; raise if it fails."""
    cmd = accelerate_command(module, args, gpus, processes)
    env = dict(os.environ)
    if threads:
        n = max(1, threads // max(gpus or processes, 1))
        env["OMP_NUM_THREADS"] = str(n)  # each process gets its share of the job's threads
    log.info("launching: %s", " ".join(cmd))
    with open(log_path, "a") if log_path else open(os.devnull, "w") as out:
        proc = subprocess.run(cmd, stdout=out if log_path else None, stderr=subprocess.STDOUT if log_path else None,
                              env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{module} failed with exit code {proc.returncode}; see {log_path or 'the output above'}")


def launch_rule_job(snakemake, gpus: list) -> None:
    """A training rule's job: ``python -m bicross.train <recipe>`` with the rule's inputs that the
    recipe takes, its output, checkpoints and hyperparameters; one process per assigned GPU (else the
    `cpu_processes` resource)."""
    from bicross.train import recipe

    p = snakemake.params
    args = [p.recipe]
    for key in recipe(p.recipe).INPUTS:
        value = snakemake.input[key]
        args += [f"--{key}", *([value] if isinstance(value, str) else value)]
    args += ["--out", snakemake.output[0], "--checkpoints", p.checkpoints, "--hparams", json.dumps(p.hparams)]
    launch("bicross.train", args, gpus=len(gpus), processes=int(snakemake.resources.get("cpu_processes", 1)),
           log_path=snakemake.log[0], threads=snakemake.threads)
