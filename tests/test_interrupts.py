"""The training loop under signals (bicross.training.train, a toy model): SIGTERM or SIGINT stops it after
the current step with a checkpoint, on every process at the same step, and a rerun resumes from there to
the same weights as an uninterrupted run; under the workflow the last step's checkpoint is kept.

The whole workflow under each interruption is tests/test_reliability.py's signal matrix."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest
import torch
from workflow_utils import REPO

from bicross.launch import free_port

STEPS = 12
TOY = textwrap.dedent("""
    import json, os, signal, sys
    import torch
    from bicross.training import TrainConfig, configure_logging, finish, setup_accelerator, train

    out, checkpoints, stop_at, signum, rank = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), \\
        int(sys.argv[5])
    accelerator = setup_accelerator("fp32", 0)
    configure_logging(accelerator)
    config = TrainConfig(batch_size=2, max_steps=__STEPS__, checkpoint_every=4, learning_rate=1e-2, warmup_ratio=0.0,
                         precision="fp32", log_every=1, seed=0)

    class Toy(torch.utils.data.Dataset):
        def __init__(self):
            self.x = torch.randn(40, 4, generator=torch.Generator().manual_seed(0))
            self.epoch = 0

        def set_epoch(self, epoch):
            self.epoch = epoch

        def __len__(self):
            return len(self.x)

        def __getitem__(self, i):
            return self.x[(i * 7 + self.epoch) % len(self.x)]

    calls = 0

    def loss_fn(model, batch):
        global calls
        calls += 1
        if calls == stop_at and accelerator.process_index == rank:
            os.kill(os.getpid(), signum)  # as SLURM's SIGTERM or a Ctrl-C would, in the middle of a step
        return ((model(batch) - 1.0) ** 2).mean()

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    model, result = train(accelerator, model, Toy(), torch.stack, loss_fn, config, checkpoints, settings={"toy": 1})
    if accelerator.is_main_process:
        torch.save(accelerator.unwrap_model(model).state_dict(), out)
        print(json.dumps({"steps": result.steps, "resumed_from": result.resumed_from}))
    finish(accelerator, checkpoints)
""").replace("__STEPS__", str(STEPS))


def _run(tmp_path, name, stop_at=0, signum=signal.SIGTERM, processes=1, rank=0, keep_final=False):
    """The toy training in `tmp_path`; `signum` sent to process `rank` during its `stop_at`-th step of
    this run. One process runs as plain python (accelerate needs no launcher for it)."""
    script = tmp_path / "toy.py"
    script.write_text(TOY)
    out, checkpoints = tmp_path / f"{name}.pt", tmp_path / "checkpoints"
    cmd = [sys.executable]
    if processes > 1:
        cmd += ["-m", "accelerate.commands.launch", "--num_machines", "1", "--mixed_precision", "no",
                "--dynamo_backend", "no", "--main_process_port", str(free_port()), "--multi_gpu",
                "--num_processes", str(processes)]
    cmd += [str(script), str(out), str(checkpoints), str(stop_at), str(int(signum)), str(rank)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
    env.pop("BICROSS_KEEP_FINAL_CHECKPOINT", None)
    if keep_final:
        env["BICROSS_KEEP_FINAL_CHECKPOINT"] = "1"
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    return proc, out, checkpoints


def _steps(checkpoints) -> list[str]:
    return sorted(p.name for p in checkpoints.iterdir()) if checkpoints.exists() else []


def _same(a, b) -> bool:
    want, got = torch.load(a), torch.load(b)
    return want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)


def _stopped(proc, signum, step, checkpoints, steps):
    name = signal.Signals(signum).name
    assert proc.returncode == 128 + signum, proc.stderr[-3000:]
    assert f"{name}: stopping after this step" in proc.stderr
    assert f"stopped by {name} after step {step} of {STEPS}; a rerun resumes from step {step}" in proc.stderr
    assert _steps(checkpoints) == steps
    assert json.loads((checkpoints / f"step-{step}" / "position.json").read_text())["step"] == step


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run under the workflow's setting: its weights, and the final checkpoint it keeps."""
    root = tmp_path_factory.mktemp("toy-ref")
    proc, out, checkpoints = _run(root, "ref", keep_final=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root, proc, out, checkpoints


def test_sigterm_then_sigint_each_stop_with_a_checkpoint_and_the_rerun_ends_where_an_uninterrupted_run_does(
        tmp_path, reference):
    # SIGTERM during step 6: that step ends, is checkpointed (6 is no multiple of checkpoint_every, 4), stop
    first, out, checkpoints = _run(tmp_path, "model", stop_at=6, signum=signal.SIGTERM)
    _stopped(first, signal.SIGTERM, 6, checkpoints, ["step-4", "step-6"])
    assert not out.exists()
    # the rerun resumes from step 6; a Ctrl-C during its 3rd step stops it after step 9
    second, out, checkpoints = _run(tmp_path, "model", stop_at=3, signum=signal.SIGINT)
    assert "resuming from step 6" in second.stderr
    _stopped(second, signal.SIGINT, 9, checkpoints, ["step-8", "step-9"])
    third, out, checkpoints = _run(tmp_path, "model")
    assert third.returncode == 0, third.stderr[-3000:]
    assert "resuming from step 9" in third.stderr
    assert json.loads(third.stdout.strip().splitlines()[-1]) == {"steps": STEPS, "resumed_from": 9}
    assert not checkpoints.exists()  # outside the workflow: removed once the model is saved
    assert _same(reference[2], out)


def test_under_the_workflow_the_final_checkpoint_is_kept_and_a_rerun_trains_nothing(tmp_path, reference):
    root, proc, out, checkpoints = reference
    assert _steps(checkpoints) == [f"step-{STEPS}"]  # the final one only: what a rerun needs
    saved = tmp_path / "ref.pt"
    out.rename(saved)  # what Snakemake does to a model whose job it did not see end
    again, out, checkpoints = _run(root, "ref", keep_final=True)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"resuming from step {STEPS}" in again.stderr and f"trained {STEPS} steps (0 in this run)" in again.stderr
    assert _same(saved, out)


@pytest.mark.slow
def test_a_signal_to_one_process_stops_every_process_at_the_same_step(tmp_path):
    """Two gloo processes, SIGTERM to rank 0 only: both checkpoint step 6 together and stop."""
    (tmp_path / "ref").mkdir()
    ref, ref_out, _ = _run(tmp_path / "ref", "ref", processes=2)
    assert ref.returncode == 0, ref.stderr[-3000:]
    first, out, checkpoints = _run(tmp_path, "model", stop_at=6, signum=signal.SIGTERM, processes=2, rank=0)
    assert first.returncode != 0 and not out.exists()
    assert "stopped by SIGTERM after step 6 of 12" in first.stderr
    assert _steps(checkpoints) == ["step-4", "step-6"]
    again, out, checkpoints = _run(tmp_path, "model", processes=2)
    assert again.returncode == 0 and "resuming from step 6" in again.stderr, again.stderr[-3000:]
    assert _same(ref_out, out)
