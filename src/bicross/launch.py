"""Start a training module under `accelerate launch`, with as many processes as the job has GPUs.

Snakemake passes the rule's `gpu` resource; with none the job trains in one CPU process (or, for
tests and CPU clusters, `processes` gloo processes). Mixed precision is the trainer's own choice
(`precision: auto`), so the launcher always says `--mixed_precision no`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading

log = logging.getLogger("bicross.launch")

# Set (to "1") by the workflow: a training keeps its final checkpoint until Snakemake has recorded its
# model, and the workflow removes it then (bicross.training.keep_final_checkpoint).
KEEP_FINAL_CHECKPOINT = "BICROSS_KEEP_FINAL_CHECKPOINT"


def keep_final_checkpoints() -> None:
    """From now on, every training this process (or a child of it) starts keeps its final checkpoint."""
    os.environ[KEEP_FINAL_CHECKPOINT] = "1"


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
        proc = subprocess.Popen(cmd, stdout=out if log_path else None, stderr=subprocess.STDOUT if log_path else None,
                                env=env)
        code = wait_for_training(proc)
    if code != 0:
        raise RuntimeError(f"{module} failed with exit code {code}; see {log_path or 'the output above'}")


# How long the training processes get to write their checkpoint once told to stop (SLURM's default
# KillWait, between its SIGTERM and its SIGKILL, is 30 s; a large model on a slow disk needs more).
STOP_GRACE_SECONDS = 600


def wait_for_training(proc: subprocess.Popen) -> int:
    """Wait for the launcher `proc` and for the training processes it started; its exit status.

    SIGINT or SIGTERM to this process is passed on to the training processes, which stop after their
    current step with a checkpoint (bicross.training.StopRequest), and this waits for them: the job
    ends only once that checkpoint is written, even where the launcher died first (Ctrl-C reaches
    every process of the terminal's group, and `accelerate launch` on one process just dies). A
    training process left running by a launcher that died is stopped the same way.
    """
    import psutil

    got: list[int] = []
    trainers: dict[int, psutil.Process] = {}
    main = threading.current_thread() is threading.main_thread()
    previous = {s: signal.signal(s, lambda signum, frame: got.append(signum)) for s in _STOP_SIGNALS} if main else {}
    told: set[int] = set()  # the training processes passed the stop signal
    try:
        while True:
            try:
                code = proc.wait(timeout=1)
                break
            except subprocess.TimeoutExpired:
                pass
            with contextlib.suppress(psutil.Error):  # the launcher may end between wait and this
                trainers.update((p.pid, p) for p in psutil.Process(proc.pid).children(recursive=True))
            if got:
                _signal_all([p for pid, p in trainers.items() if pid not in told], got[0])
                told.update(trainers)
        alive = [p for p in trainers.values() if p.is_running()]
        if alive:
            log.warning("the launcher ended (exit status %s) while %d training process(es) ran on: stopping "
                        "them with a checkpoint", code, len(alive))
            _signal_all([p for p in alive if p.pid not in told], got[0] if got else signal.SIGTERM)
            _, alive = psutil.wait_procs(alive, timeout=STOP_GRACE_SECONDS)
            _signal_all(alive, signal.SIGKILL)
            code = code or 1
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return code


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _signal_all(processes, signum) -> None:
    for p in processes:
        with contextlib.suppress(Exception):
            p.send_signal(signum)


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
