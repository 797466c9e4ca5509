"""Give each local job its own GPUs: a disjoint set of device ids in CUDA_VISIBLE_DEVICES.

Snakemake's `--resources gpu=8` caps how many GPUs are in use at once but does not say which ones,
so two concurrent jobs would both take GPU 0. `gpu_devices(n)` picks `n` free ids from the machine's
inventory and holds one `fcntl.flock` lock per id (a file `<lock dir>/gpu-<id>.lock`) for as long as
the job runs. The kernel drops a flock when its process exits, however it exits (a `kill -9`
included), so an id can never leak. Ids are taken under one short-lived allocator lock, all or
nothing, so two jobs can't each hold half of what the other needs.

- Inventory: `$BICROSS_GPUS` ("0,1,2,3"; "" = none), else the `CUDA_VISIBLE_DEVICES` Snakemake was
  started with, else the GPUs `nvidia-smi` lists (or `/proc/driver/nvidia/gpus`), else none. torch is
  deliberately not asked: counting devices through it initialises CUDA, after which
  CUDA_VISIBLE_DEVICES no longer has any effect in this process.
- Lock directory: `$BICROSS_GPU_LOCKS`, default `/tmp/bicross-gpus` (shared by every workflow on the
  machine, so two Snakemake runs share the inventory too).
- `n == 0`: no id is taken; on a machine with GPUs CUDA_VISIBLE_DEVICES is set to "" so the job runs
  on CPU (as the rule asked); on a machine without GPUs nothing is set.
- `n > 0` on a machine without GPUs: nothing is set, the job runs on CPU, the log says so (the same
  profile then serves CPU and GPU machines).
- `n` larger than the inventory: `GPUError` at once (it could never be satisfied). Otherwise the job
  waits for ids to come free (`timeout` seconds, default forever; a message every minute).
- Under SLURM (`SLURM_JOB_ID` set) the scheduler has already assigned devices: nothing is touched and
  the ids SLURM exported (CUDA_VISIBLE_DEVICES, absent for GRES without real devices) are returned.

Enter the context before anything initialises CUDA (before `torch.cuda.*` is called, before
`accelerate launch`); the ids it yields are the ones to use (`launch(gpus=len(ids))`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

log = logging.getLogger("bicross.gpus")

DEFAULT_LOCK_DIR = "/tmp/bicross-gpus"
ENV_INVENTORY = "BICROSS_GPUS"
ENV_LOCKS = "BICROSS_GPU_LOCKS"


class GPUError(RuntimeError):
    """A GPU request that can't be met (more ids than the inventory holds, or a timeout)."""


def parse_ids(text: str | None) -> list[str]:
    """"0, 1,2" -> ["0", "1", "2"]; duplicates dropped, order kept."""
    ids: list[str] = []
    for part in (text or "").split(","):
        part = part.strip()
        if part and part not in ids:
            ids.append(part)
    return ids


def detected_ids() -> list[str]:
    """The GPUs this machine has, without initialising CUDA: nvidia-smi, else the driver's /proc entries."""
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run([smi, "--query-gpu=index", "--format=csv,noheader"], capture_output=True,
                                 text=True, timeout=30, check=True).stdout
            return parse_ids(",".join(out.split()))
        except (OSError, subprocess.SubprocessError):
            log.warning("nvidia-smi failed; looking at /proc/driver/nvidia/gpus instead")
    proc = Path("/proc/driver/nvidia/gpus")
    if proc.is_dir():
        return [str(i) for i in range(len(list(proc.iterdir())))]
    return []


def inventory(env: Mapping[str, str] | None = None) -> list[str]:
    """The device ids local jobs share (see the module docstring for where they come from)."""
    env = os.environ if env is None else env
    if ENV_INVENTORY in env:
        return parse_ids(env[ENV_INVENTORY])
    if "CUDA_VISIBLE_DEVICES" in env:
        return parse_ids(env["CUDA_VISIBLE_DEVICES"])
    return detected_ids()


def under_slurm(env: Mapping[str, str] | None = None) -> bool:
    env = os.environ if env is None else env
    return bool(env.get("SLURM_JOB_ID"))


def lock_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    return Path(env.get(ENV_LOCKS) or DEFAULT_LOCK_DIR)


def _open_lock(path: Path) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    with contextlib.suppress(OSError):  # another user's file: its mode is theirs to keep
        os.fchmod(fd, 0o666)
    return fd


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError as e:
        if e.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            return False
        raise


def _note_holder(fd: int) -> None:
    """Write who holds an id into its lock file (for people debugging; the lock itself is the flock)."""
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode(), 0)


class _Allocation:
    """The open, flocked files of the ids one job holds; closing them releases the ids."""

    def __init__(self, ids: list[str], fds: list[int]):
        self.ids, self.fds = ids, fds

    def release(self) -> None:
        for fd in self.fds:
            with contextlib.suppress(OSError):
                os.close(fd)  # closing the last descriptor drops the flock
        self.fds = []


def try_acquire(count: int, ids: list[str], directory: Path) -> _Allocation | None:
    """Take `count` free ids of `ids` at once, or none (returns None)."""
    directory.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        directory.chmod(0o1777)  # shared by every user's jobs, like /tmp
    guard = _open_lock(directory / "allocator.lock")
    try:
        fcntl.flock(guard, fcntl.LOCK_EX)  # held for microseconds: only while picking ids
        taken: list[str] = []
        fds: list[int] = []
        for dev in ids:
            fd = _open_lock(directory / f"gpu-{dev}.lock")
            if _try_lock(fd):
                taken.append(dev)
                fds.append(fd)
                if len(taken) == count:
                    break
            else:
                os.close(fd)
        if len(taken) < count:
            _Allocation(taken, fds).release()
            return None
        for fd in fds:
            _note_holder(fd)
        return _Allocation(taken, fds)
    finally:
        os.close(guard)


@contextlib.contextmanager
def _environ(name: str, value: str | None) -> Iterator[None]:
    """Set (or, with None, leave alone) an environment variable; restore it afterwards."""
    if value is None:
        yield
        return
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


@contextlib.contextmanager
def gpu_devices(count: int, *, timeout: float | None = None, poll: float = 0.5,
                env: Mapping[str, str] | None = None) -> Iterator[list[str]]:
    """Hold `count` GPU ids for the duration of the block, exported as CUDA_VISIBLE_DEVICES.

    Yields the ids the job may use ([] = run on CPU). See the module docstring for every case.
    """
    env = os.environ if env is None else env
    count = int(count or 0)
    if count < 0:
        raise GPUError(f"a job can't ask for {count} GPUs")
    if under_slurm(env):
        visible = parse_ids(env.get("CUDA_VISIBLE_DEVICES"))
        log.info("SLURM job %s: using the scheduler's GPU assignment (CUDA_VISIBLE_DEVICES=%s, "
                 "SLURM_GPUS_ON_NODE=%s)", env.get("SLURM_JOB_ID"), env.get("CUDA_VISIBLE_DEVICES", "unset"),
                 env.get("SLURM_GPUS_ON_NODE", "unset"))
        yield visible
        return
    ids = inventory(env)
    if count == 0:
        # The rule asked for no GPU: hide the machine's GPUs so nothing lands on GPU 0 unaccounted.
        with _environ("CUDA_VISIBLE_DEVICES", "" if ids else None):
            yield []
        return
    if not ids:
        log.info("the job asks for %d GPU(s) but this machine has none (set %s to declare some): "
                    "running on CPU", count, ENV_INVENTORY)
        yield []
        return
    if count > len(ids):
        raise GPUError(f"the job asks for {count} GPUs but the inventory has only {len(ids)} "
                       f"({','.join(ids)}; from ${ENV_INVENTORY}, CUDA_VISIBLE_DEVICES or nvidia-smi): "
                       f"lower the rule's `gpu` resource (profile `set-resources`) or declare more")
    directory = lock_dir(env)
    start, noted = time.monotonic(), None
    while (alloc := try_acquire(count, ids, directory)) is None:
        now = time.monotonic()
        if timeout is not None and now - start >= timeout:
            raise GPUError(f"no {count} of GPUs {','.join(ids)} came free within {timeout:g} s "
                           f"(held by other jobs; see the files in {directory})")
        if noted is None or now - noted >= 60:
            log.info("waiting for %d free GPU(s) of %s (locks in %s)", count, ",".join(ids), directory)
            noted = now
        time.sleep(poll)
    try:
        log.info("assigned GPU(s) %s (inventory %s)", ",".join(alloc.ids), ",".join(ids))
        with _environ("CUDA_VISIBLE_DEVICES", ",".join(alloc.ids)):
            yield list(alloc.ids)
    finally:
        alloc.release()


def job_gpus(snakemake, **kwargs) -> contextlib.AbstractContextManager[list[str]]:
    """`gpu_devices` for a Snakemake `script:` job: as many ids as the rule's `gpu` resource."""
    return gpu_devices(int(snakemake.resources.get("gpu", 0) or 0), **kwargs)
