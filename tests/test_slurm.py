"""The tiny pipeline through a real SLURM with `--workflow-profile profiles/slurm`, checked against a local run.

Needs a running SLURM (`sinfo` on PATH and a node up): CI starts a single-node one with
scripts/local-slurm.sh; elsewhere the test is skipped with the reason. Run it alone with
`./run.sh test -m slurm tests/test_slurm.py`.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pyarrow.parquet as pq
import pytest
from workflow_utils import REPO, snakemake, tiny_retrieval_config, write_config

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def usable_partition() -> dict[str, str]:
    """The default (else first) partition that is up with a node ready, or a skip with the reason."""
    if not shutil.which("sinfo"):
        pytest.skip("no SLURM here: `sinfo` is absent (scripts/local-slurm.sh installs a single-node one)")
    proc = subprocess.run(["sinfo", "-h", "-o", "%P|%a|%t|%c|%m"], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"SLURM is not answering: sinfo failed: {proc.stderr.strip()}")
    rows = []
    for line in proc.stdout.split():
        name, avail, state, cpus, mem = line.split("|")
        if avail == "up" and state.rstrip("*~#") in ("idle", "mix", "alloc"):
            rows.append({"name": name.rstrip("*"), "default": name.endswith("*"), "cpus": cpus.rstrip("+"),
                         "mem": mem.rstrip("+")})
    if not rows:
        pytest.skip(f"no SLURM partition is up with a node ready (sinfo: {proc.stdout.strip()!r})")
    return sorted(rows, key=lambda r: not r["default"])[0]


@pytest.fixture
def tiny_config(tiny_model, tiny_beir):
    # few jobs: each SLURM job costs a Snakemake start-up
    return tiny_retrieval_config(tiny_model, tiny_beir, shards=2, eval_splits=["test"])


def metric_rows(path) -> dict[tuple, float]:
    """(iteration, encoder, split, metric) -> value."""
    return {(r["iteration"], r["encoder"], r["split"], r["metric"]): r["value"]
            for r in pq.read_table(path).to_pylist()}


def test_tiny_pipeline_through_slurm_equals_a_local_run(tmp_path, tiny_config, monkeypatch):
    partition = usable_partition()
    # Test-only site settings, read by profiles/slurm/config.yaml (see its header): this node's size.
    monkeypatch.setenv("BICROSS_SLURM_PARTITION", partition["name"])
    monkeypatch.setenv("BICROSS_SLURM_ACCOUNT", "bicross-test")
    monkeypatch.setenv("BICROSS_SLURM_MAX_CPUS", "1")  # tiny jobs: let them share a small node
    monkeypatch.setenv("BICROSS_SLURM_MAX_MEM_MB", str(min(int(partition["mem"]), 4000)))

    slurm_dir, local_dir = tmp_path / "slurm", tmp_path / "local"
    slurm_dir.mkdir()
    local_dir.mkdir()
    proc = snakemake(slurm_dir, write_config(slurm_dir / "config.yaml", tiny_config),
                     "--workflow-profile", str(REPO / "profiles" / "slurm"),
                     "--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "1",
                     "--latency-wait", "5", "--retries", "0", "--jobs", "4")
    text = proc.stdout + proc.stderr

    # Jobs went through SLURM: the executor names the ids, SLURM knows them, each GPU rule asked for a gpu.
    job_ids = re.findall(r"SLURM jobid (\d+)", text)
    assert len(job_ids) >= 7, text[-3000:]  # prepare, tokenize (corpus, queries), 2 shards, ...
    shown = subprocess.run(["scontrol", "show", "job", job_ids[0]], capture_output=True, text=True).stdout
    assert f"JobId={job_ids[0]}" in shown and "JobState=COMPLETED" in shown, shown
    res = slurm_dir / "results" / "tiny"
    encode_log = (res / "logs" / "encode_corpus" / "iter0-shard0.log").read_text()
    slurm_id = re.search(r"SLURM job (\d+): using the scheduler's GPU assignment", encode_log)
    assert slurm_id and slurm_id.group(1) in job_ids, encode_log
    shown = subprocess.run(["scontrol", "show", "job", slurm_id.group(1)], capture_output=True, text=True).stdout
    assert re.search(r"gres/gpu[:=]1|gpu:1", shown), shown
    assert "SLURM_GPUS_ON_NODE=unset" not in encode_log

    snakemake(local_dir, write_config(local_dir / "config.yaml", tiny_config))
    on_slurm = metric_rows(res / "metrics.parquet")
    local = metric_rows(local_dir / "results" / "tiny" / "metrics.parquet")
    assert len(on_slurm) >= 3 and on_slurm.keys() == local.keys()
    assert on_slurm == pytest.approx(local, abs=1e-9)
