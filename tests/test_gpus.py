"""GPU id assignment on CPU, with a declared inventory of fake ids and real concurrent processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from types import SimpleNamespace

import pytest

from bicross import gpus

# A job: take `count` ids, claim a marker file per id with O_EXCL (fails if another job holds that id
# right now), hold for `hold` seconds, record what it saw, release.
JOB = textwrap.dedent("""
    import json, os, sys, time
    from bicross.gpus import gpu_devices
    count, hold, markers, out = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4]
    with gpu_devices(count, poll=0.05) as ids:
        visible = os.environ["CUDA_VISIBLE_DEVICES"]
        clashes = []
        for dev in ids:
            try:
                os.close(os.open(os.path.join(markers, dev), os.O_CREAT | os.O_EXCL))
            except FileExistsError:
                clashes.append(dev)
        print("held", flush=True)
        start = time.time()
        time.sleep(hold)
        end = time.time()
        for dev in ids:
            if dev not in clashes:
                os.remove(os.path.join(markers, dev))
    with open(out, "w") as f:
        json.dump({"ids": ids, "visible": visible, "clashes": clashes, "start": start, "end": end}, f)
""")


@pytest.fixture
def fake_gpus(tmp_path, monkeypatch):
    """Inventory 0,1,2 with locks under tmp_path; not under SLURM; the env subprocesses inherit."""
    monkeypatch.setenv("BICROSS_GPUS", "0,1,2")
    monkeypatch.setenv("BICROSS_GPU_LOCKS", str(tmp_path / "locks"))
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return tmp_path


def start_job(tmp_path, name: str, count: int, hold: float) -> tuple[subprocess.Popen, str]:
    markers = tmp_path / "markers"
    markers.mkdir(exist_ok=True)
    out = str(tmp_path / f"{name}.json")
    proc = subprocess.Popen([sys.executable, "-c", JOB, str(count), str(hold), str(markers), out],
                            stdout=subprocess.PIPE, text=True)
    return proc, out


def test_concurrent_jobs_never_share_an_id(fake_gpus):
    jobs = [start_job(fake_gpus, f"job{i}", count, 0.4) for i, count in enumerate([1, 2, 1, 1, 2, 1])]
    for proc, _ in jobs:
        assert proc.wait(timeout=60) == 0
    results = [json.loads(open(out).read()) for _, out in jobs]
    for r, count in zip(results, [1, 2, 1, 1, 2, 1], strict=True):
        assert len(r["ids"]) == count and set(r["ids"]) <= {"0", "1", "2"}
        assert r["visible"] == ",".join(r["ids"])
        assert r["clashes"] == []
    # any two jobs whose holding times overlapped had disjoint ids, and some did overlap
    overlapping = 0
    for i, a in enumerate(results):
        for b in results[i + 1:]:
            if a["start"] < b["end"] and b["start"] < a["end"]:
                overlapping += 1
                assert not set(a["ids"]) & set(b["ids"]), (a, b)
    assert overlapping > 0


def test_a_killed_jobs_ids_come_back(fake_gpus):
    proc, _ = start_job(fake_gpus, "victim", 3, 60)
    assert proc.stdout.readline().strip() == "held"
    with pytest.raises(gpus.GPUError, match="came free"):  # all three are taken
        with gpus.gpu_devices(1, timeout=0.3, poll=0.05):
            pass
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    with gpus.gpu_devices(3, timeout=5, poll=0.05) as ids:  # the kernel dropped the victim's flocks
        assert sorted(ids) == ["0", "1", "2"]
        assert os.environ["CUDA_VISIBLE_DEVICES"] == ",".join(ids)
    assert "CUDA_VISIBLE_DEVICES" not in os.environ  # restored on exit


def test_waits_until_ids_come_free(fake_gpus):
    proc, _ = start_job(fake_gpus, "holder", 2, 1.0)
    assert proc.stdout.readline().strip() == "held"
    start = time.monotonic()
    with gpus.gpu_devices(2, timeout=30, poll=0.05) as ids:
        waited = time.monotonic() - start
        assert len(ids) == 2
    assert proc.wait(timeout=10) == 0
    assert waited > 0.3  # one id was free, but two were asked for: all or nothing


def test_more_than_the_inventory_is_a_clear_error(fake_gpus):
    start = time.monotonic()
    with pytest.raises(gpus.GPUError, match="asks for 4 GPUs but the inventory has only 3"):
        with gpus.gpu_devices(4):
            pass
    assert time.monotonic() - start < 1  # no waiting for what can never come


def test_zero_gpus_takes_no_id(fake_gpus):
    with gpus.gpu_devices(0) as ids:
        assert ids == []
        assert os.environ["CUDA_VISIBLE_DEVICES"] == ""  # this machine has GPUs: hide them, run on CPU
        with gpus.gpu_devices(3, timeout=1) as all_ids:  # and none of them is held
            assert len(all_ids) == 3
    assert "CUDA_VISIBLE_DEVICES" not in os.environ


def test_no_gpus_on_the_machine_sets_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("BICROSS_GPUS", "")
    monkeypatch.setenv("BICROSS_GPU_LOCKS", str(tmp_path / "locks"))
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    for count in (0, 2):
        with gpus.gpu_devices(count) as ids:
            assert ids == []
            assert "CUDA_VISIBLE_DEVICES" not in os.environ
    assert not (tmp_path / "locks").exists()


def test_slurm_assignment_is_left_alone(fake_gpus, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5,7")
    with gpus.gpu_devices(2) as ids:
        assert ids == ["5", "7"]
        assert os.environ["CUDA_VISIBLE_DEVICES"] == "5,7"
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")  # a GRES without device files: SLURM sets none
    with gpus.gpu_devices(8) as ids:  # more than BICROSS_GPUS: SLURM's business, not ours
        assert ids == []
        assert "CUDA_VISIBLE_DEVICES" not in os.environ
    assert not (fake_gpus / "locks").exists()


def test_inventory_sources(monkeypatch):
    assert gpus.inventory({"BICROSS_GPUS": " 2, 3,2 ", "CUDA_VISIBLE_DEVICES": "0"}) == ["2", "3"]
    assert gpus.inventory({"CUDA_VISIBLE_DEVICES": "1,4"}) == ["1", "4"]
    monkeypatch.setattr(gpus, "detected_ids", lambda: ["0"])
    assert gpus.inventory({}) == ["0"]


def test_job_gpus_reads_the_rules_resource(fake_gpus):
    job = SimpleNamespace(resources={"gpu": 2})
    with gpus.job_gpus(job) as ids:
        assert len(ids) == 2
    with gpus.job_gpus(SimpleNamespace(resources={})) as ids:
        assert ids == []
