"""Reusable, loss-agnostic training machinery on top of `accelerate`, shared by every recipe (bicross.train).

A recipe supplies a model, a map-style dataset with ``set_epoch(epoch)`` (its items for an epoch are a
deterministic function of (seed, epoch)), a collate function and ``loss_fn(model, batch) -> scalar``
(the mean over the micro-batch's examples); `train` does the rest:

- `setup_accelerator`: mixed precision from ``precision: auto|fp32|bf16|fp16`` (bf16 autocast on
  AMX/avx512_bf16 CPUs and bf16 GPUs, fp16 with loss scaling on older GPUs), seeding;
- AdamW with weight decay except on biases and norm weights; linear warm-up then linear decay;
- gradient accumulation, gradient clipping, epochs or ``max_steps``, gradient checkpointing;
- tqdm progress (rate, ETA) and a loss log line every ``log_every`` steps, on the main process only;
- every step's loss and learning rate in the result (``history``, ``learning_rates``; a resumed run gets
  the earlier steps' from its checkpoint), which `bicross.train.run` saves as ``loss.parquet``;
- a checkpoint every ``checkpoint_every`` optimizer steps (``accelerator.save_state`` into
  ``<checkpoints>/step-<n>``: model, optimizer, scheduler, RNG states, plus ``position.json`` with the
  data position); the last ``keep_checkpoints`` are kept; a restarted job resumes from the newest one;
- `save_final`: the model appears atomically (temporary sibling directory, then a rename).

Same groups per optimizer step whatever the process layout: the dataset's order for an epoch does not
depend on the number of processes; the epoch is cut to a whole number of global batches
(``batch_size * num_processes * gradient_accumulation`` examples); consecutive per-device batches of
``batch_size`` go round-robin to the processes (accelerate's `BatchSamplerShard`: process p gets
batches p, p + n, p + 2n, ...), so optimizer step s sees examples ``[s * global, (s + 1) * global)``
of the epoch's order, e.g. one process with batch 4 and two processes with batch 2 see the same 4
groups per step. Each micro-batch loss is a mean over equally many examples and DDP averages gradients,
so the update is the same up to floating-point summation order.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import re
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from bicross.errors import ConfigError
from bicross.hparams import TrainConfig
from bicross.schemas import atomic_dir

log = logging.getLogger("bicross.training")

POSITION_FILE = "position.json"
_STEP_DIR = re.compile(r"^step-(\d+)$")


@dataclass
class Plan:
    """How an epoch splits into steps for this process layout."""

    examples: int  # usable examples per epoch (a whole number of global batches)
    dropped: int  # examples left over per epoch (fewer than one global batch)
    global_batch: int  # examples per optimizer step, all processes together
    batches_per_epoch: int  # micro-batches per epoch, per process
    steps_per_epoch: int
    total_steps: int
    warmup_steps: int


@dataclass
class TrainResult:
    steps: int
    epochs_seen: int
    history: list[tuple[int, float]] = field(default_factory=list)  # (step, mean loss of that step)
    learning_rates: list[tuple[int, float]] = field(default_factory=list)  # (step, base learning rate used)
    examples: int = 0  # examples trained on in this run, all processes (not counting a resumed part)
    seconds: float = 0.0
    resumed_from: int = 0

    @property
    def examples_per_second(self) -> float:
        return self.examples / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        del out["learning_rates"]  # in the model's loss table (bicross.losscurve), not training.json
        out["examples_per_second"] = self.examples_per_second
        return out


# --------------------------------------------------------------------------------------------------
# set-up


def mixed_precision_name(dtype: torch.dtype) -> str:
    return {torch.float32: "no", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]


def setup_accelerator(precision: str = "auto", seed: int = 42):
    """An `Accelerator` with mixed precision resolved for this process's device, and every RNG seeded.

    The trainer's `precision` wins over `accelerate launch --mixed_precision` (the launcher says "no").
    Returns the accelerator; its ``mixed_precision`` is "no", "bf16" or "fp16".
    """
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    from bicross.devices import pick_device, resolve_precision

    device = pick_device()
    dtype = resolve_precision(precision, device)
    if dtype == torch.float16 and device.type == "cpu":
        raise ConfigError("precision fp16 needs a GPU; use bf16 or fp32 (or auto) on a CPU")
    # cpu=True without a GPU: accelerate 1.15 only sets up gloo (MULTI_CPU) for the processes of
    # `accelerate launch --multi_gpu` / torchrun when told it runs on CPU; otherwise each process
    # would train alone (DistributedType.NO, world size 1).
    accelerator = Accelerator(mixed_precision=mixed_precision_name(dtype), cpu=device.type == "cpu")
    set_seed(seed)
    return accelerator


def start(config: TrainConfig, log_path: str | None = None):
    """A recipe's first steps: the accelerator (precision, seeds) and logging; logs the settings once."""
    config.validate()
    accelerator = setup_accelerator(config.precision, config.seed)
    configure_logging(accelerator, log_path)
    if accelerator.is_main_process:
        log.info("hyperparameters %s", json.dumps(asdict(config), sort_keys=True))
    return accelerator


def configure_logging(accelerator, log_path: str | None = None) -> None:
    """INFO on the main process, warnings only on the others; also append to `log_path` when given."""
    level = logging.INFO if accelerator.is_main_process else logging.WARNING
    fmt = logging.Formatter(
        f"%(asctime)s [rank {accelerator.process_index}] %(name)s %(levelname)s %(message)s"
    )
    root = logging.getLogger()
    root.setLevel(level)
    if not any(isinstance(h, logging.StreamHandler) and getattr(h, "_bicross", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(fmt)
        handler._bicross = True
        root.addHandler(handler)
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(log_path, mode="a")
        handler.setFormatter(fmt)
        root.addHandler(handler)


def parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: weight decay on weight matrices and embeddings, none on biases and norm weights."""
    no_decay: set[int] = set()
    for module in model.modules():
        kind = type(module).__name__.lower()
        if isinstance(module, torch.nn.LayerNorm | torch.nn.GroupNorm) or "norm" in kind:
            no_decay.update(id(p) for p in module.parameters(recurse=False))
    decay, plain = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if id(param) in no_decay or name.endswith("bias") or param.ndim < 2:
            plain.append(param)
        else:
            decay.append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": plain, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def head_parameter_names(model: torch.nn.Module) -> set[str]:
    """Parameters outside the base model (``model.base_model_prefix``), e.g. a sequence-classification head."""
    prefix = getattr(model, "base_model_prefix", "")
    if not prefix or not hasattr(model, prefix):
        return set()
    return {name for name, _ in model.named_parameters() if not name.startswith(prefix + ".")}


def make_optimizer(model: torch.nn.Module, config: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    """AdamW over `parameter_groups`; the fused kernel where torch has one (about 4x faster steps on CPU).

    With ``head_learning_rate`` the head's parameters (`head_parameter_names`) get their own groups at
    that rate; the warm-up/decay schedule scales every group alike.
    """
    groups = parameter_groups(model, config.weight_decay)
    if config.head_learning_rate is not None:
        names = head_parameter_names(model)
        head = {id(p) for name, p in model.named_parameters() if name in names}
        split = []
        for group in groups:
            body = [p for p in group["params"] if id(p) not in head]
            top = [p for p in group["params"] if id(p) in head]
            split += [{**group, "params": body}] if body else []
            split += [{**group, "params": top, "lr": float(config.head_learning_rate)}] if top else []
        groups = split
    if device.type in ("cpu", "cuda"):
        try:
            return torch.optim.AdamW(groups, lr=config.learning_rate, fused=True)
        except (RuntimeError, TypeError, ValueError):  # pragma: no cover - old torch / odd parameters
            pass
    return torch.optim.AdamW(groups, lr=config.learning_rate)


def make_plan(num_examples: int, config: TrainConfig, num_processes: int) -> Plan:
    """Steps per epoch and in total for `num_examples` per epoch on `num_processes` processes."""
    global_batch = config.batch_size * num_processes * config.gradient_accumulation
    steps_per_epoch = num_examples // global_batch
    if steps_per_epoch < 1:
        raise ConfigError(
            f"{num_examples} training examples per epoch are fewer than one global batch "
            f"(batch_size {config.batch_size} x {num_processes} processes x gradient_accumulation "
            f"{config.gradient_accumulation} = {global_batch})"
        )
    if config.max_steps is not None:
        total = int(config.max_steps)
    else:
        total = max(1, math.ceil(float(config.epochs) * steps_per_epoch - 1e-9))
    return Plan(
        examples=steps_per_epoch * global_batch,
        dropped=num_examples - steps_per_epoch * global_batch,
        global_batch=global_batch,
        batches_per_epoch=steps_per_epoch * config.gradient_accumulation,
        steps_per_epoch=steps_per_epoch,
        total_steps=total,
        warmup_steps=math.ceil(config.warmup_ratio * total),
    )


def freeze_lower_layers(model: torch.nn.Module, layers: int) -> int:
    """Stop training the base model's embeddings and its first `layers` transformer layers (the
    encoder's shared parts too, e.g. MPNet's relative attention bias); the upper layers, a pooler and a
    head still learn. Nothing below the first trained layer needs a gradient, so backward stops there:
    with half the layers frozen a step costs about 2/3 of a full one. Returns the parameters frozen."""
    base = getattr(model, "base_model", model)
    stack = getattr(getattr(base, "encoder", None), "layer", None)
    if stack is None or not hasattr(base, "embeddings"):
        raise ConfigError(f"freeze_layers needs a BERT-style model (embeddings, encoder.layer); "
                          f"{type(model).__name__} has none")
    if layers > len(stack):
        raise ConfigError(f"freeze_layers is {layers}, but the model has {len(stack)} transformer layers")
    trained = {id(p) for layer in stack[layers:] for p in layer.parameters()}
    frozen = [p for p in (*base.embeddings.parameters(), *base.encoder.parameters()) if id(p) not in trained]
    for param in frozen:
        param.requires_grad_(False)
    return sum(p.numel() for p in frozen)


def enable_gradient_checkpointing(model: torch.nn.Module) -> None:
    """Recompute activations in backward (non-reentrant, so it works under DDP)."""
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if getattr(getattr(model, "config", None), "use_cache", None):
        model.config.use_cache = False


class _FirstN(Sampler[int]):
    """0, 1, ..., n-1: the epoch's order is the dataset's own (set by its `set_epoch`)."""

    def __init__(self, n: int):
        self.n = n

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.n))

    def __len__(self) -> int:
        return self.n


# --------------------------------------------------------------------------------------------------
# checkpoints


def fingerprint(values: Any) -> str:
    """A short stable hash of JSON-able settings: a checkpoint resumes only a run with the same one."""
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:16]


def file_signature(path: str | os.PathLike) -> dict[str, Any]:
    """Path, size and modification time: enough to tell a re-made input file from the old one."""
    st = os.stat(path)
    return {"path": os.path.abspath(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


class CheckpointDir:
    """``<root>/step-<n>`` folders, each complete once it holds ``position.json`` (written last)."""

    def __init__(self, root: str | os.PathLike, keep: int = 2):
        self.root = Path(root)
        self.keep = max(1, int(keep))

    def steps(self) -> list[tuple[int, Path]]:
        if not self.root.is_dir():
            return []
        found = []
        for child in self.root.iterdir():
            match = _STEP_DIR.match(child.name)
            if match and child.is_dir() and (child / POSITION_FILE).is_file():
                found.append((int(match.group(1)), child))
        return sorted(found)

    def latest(self) -> tuple[Path, dict[str, Any]] | None:
        found = self.steps()
        if not found:
            return None
        path = found[-1][1]
        return path, json.loads((path / POSITION_FILE).read_text())

    def save(self, accelerator, step: int, position: dict[str, Any]) -> Path:
        """Every process calls this: accelerate writes into a temporary folder the main process renames."""
        final = self.root / f"step-{step}"
        tmp = self.root / f"step-{step}.tmp"
        if accelerator.is_main_process:
            self.root.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(tmp, ignore_errors=True)
        accelerator.wait_for_everyone()
        accelerator.save_state(str(tmp))
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            (tmp / POSITION_FILE).write_text(json.dumps(position))
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
            self.prune()
        accelerator.wait_for_everyone()
        return final

    def prune(self) -> None:
        """Keep the newest `keep` complete checkpoints; drop older ones and unfinished leftovers."""
        for _, path in self.steps()[: -self.keep]:
            shutil.rmtree(path, ignore_errors=True)
        for child in self.root.iterdir() if self.root.is_dir() else []:
            if child.name.endswith(".tmp") and child.is_dir():
                shutil.rmtree(child, ignore_errors=True)

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def keep_final_checkpoint() -> bool:
    """Whether to keep the last step's checkpoint after saving the model: set by the workflow
    (bicross.launch.keep_final_checkpoints), which removes it once Snakemake has recorded the model. A
    Snakemake interrupted while the job ran records no model and deletes it to run the job again; that
    rerun resumes from the checkpoint and trains nothing."""
    from bicross.launch import KEEP_FINAL_CHECKPOINT

    return os.environ.get(KEEP_FINAL_CHECKPOINT) == "1"


class StopRequest:
    """SIGTERM (SLURM's time limit or preemption, `kill`) or SIGINT (Ctrl-C) while training: stop at the
    end of the current optimizer step, with a checkpoint, rather than lose every step since the last one.

    Only the first signal counts; later ones (a launcher passing it on, a second Ctrl-C) wait for that
    checkpoint too. The handlers are set in the main thread only (Python allows no other).
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.signum = 0
        self._previous: dict[int, Any] = {}

    def install(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def restore(self) -> None:
        """The handlers from before `install`."""
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _handle(self, signum, frame) -> None:
        if not self.signum:
            self.signum = signum
            log.warning("%s: stopping after this step, with a checkpoint", signal.Signals(signum).name)

    def agreed(self, accelerator) -> int:
        """The signal any process got (0: none), the same on every process: they stop together."""
        if accelerator.num_processes == 1:
            return self.signum
        got = accelerator.gather(torch.tensor([self.signum], device=accelerator.device))
        return int(got.max().item())


# --------------------------------------------------------------------------------------------------
# the loop


def _default_count(batch: Any) -> int:
    if isinstance(batch, dict):
        batch = next(iter(batch.values()))
    if isinstance(batch, list | tuple):
        batch = batch[0]
    return int(len(batch))


def train(
    accelerator,
    model: torch.nn.Module,
    dataset: Dataset,
    collate_fn: Callable[[list[Any]], Any],
    loss_fn: Callable[[torch.nn.Module, Any], torch.Tensor],
    config: TrainConfig,
    checkpoint_dir: str | os.PathLike,
    *,
    settings: Any = None,
    count_fn: Callable[[Any], int] = _default_count,
    unit: str = "example",
    stop_after_steps: int | None = None,
) -> tuple[torch.nn.Module, TrainResult]:
    """Train `model` and return it prepared (unwrap with `accelerator.unwrap_model`) with a summary.

    `dataset` is map-style with a constant length and ``set_epoch(epoch)``; `loss_fn(model, batch)`
    returns the MEAN loss over the micro-batch. `settings` (JSON-able: hyperparameters, input file
    signatures) is fingerprinted into each checkpoint; a checkpoint with another fingerprint or
    process layout is discarded rather than resumed. SIGTERM or SIGINT stops every process after the
    current step with a checkpoint (`StopRequest`; exit status 128 + the signal). Under the workflow
    (`keep_final_checkpoint`) the last step is checkpointed too, so a rerun after an interrupted
    Snakemake resumes there and trains nothing. `stop_after_steps` (tests) ends every process with
    ``os._exit(75)`` right after that optimizer step (and its checkpoint, if one is due).
    """
    from transformers import get_linear_schedule_with_warmup

    config.validate()
    plan = make_plan(len(dataset), config, accelerator.num_processes)
    if accelerator.is_main_process:
        log.info(
            "%d %ss per epoch in %d steps of %d (batch_size %d x %d processes x accumulation %d)%s; "
            "%d steps in total, %d warm-up; precision %s",
            plan.examples, unit, plan.steps_per_epoch, plan.global_batch, config.batch_size,
            accelerator.num_processes, config.gradient_accumulation,
            f", {plan.dropped} left out per epoch" if plan.dropped else "",
            plan.total_steps, plan.warmup_steps, accelerator.mixed_precision,
        )

    if config.freeze_layers:
        frozen = freeze_lower_layers(model, int(config.freeze_layers))
        if accelerator.is_main_process:
            log.info("froze the embeddings and the first %d layers: %d parameters", config.freeze_layers, frozen)
    if config.gradient_checkpointing:
        enable_gradient_checkpointing(model)
    optimizer = make_optimizer(model, config, accelerator.device)
    scheduler = get_linear_schedule_with_warmup(optimizer, plan.warmup_steps, plan.total_steps)
    loader = DataLoader(dataset, batch_size=config.batch_size, sampler=_FirstN(plan.examples),
                        collate_fn=collate_fn, num_workers=0)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    # stepped by us once per optimizer step (accelerate would step a prepared one num_processes times)
    accelerator.register_for_checkpointing(scheduler)

    layout = {"num_processes": accelerator.num_processes, "batch_size": config.batch_size,
              "gradient_accumulation": config.gradient_accumulation, "total_steps": plan.total_steps}
    stamp = fingerprint({"settings": settings, "config": asdict(config), "layout": layout})
    checkpoints = CheckpointDir(checkpoint_dir, config.keep_checkpoints)

    step, epoch, batch_in_epoch, history, rates = 0, 0, 0, [], []
    latest = checkpoints.latest()
    if latest is not None and latest[1].get("fingerprint") != stamp:
        if accelerator.is_main_process:
            log.warning("checkpoints in %s were written for other settings or another process layout; "
                        "starting over", checkpoint_dir)
            checkpoints.remove()
        accelerator.wait_for_everyone()
        latest = None
    if latest is not None:
        path, position = latest
        accelerator.load_state(str(path))
        step, epoch, batch_in_epoch = position["step"], position["epoch"], position["batch"]
        history = [tuple(h) for h in position["history"]]
        rates = [tuple(r) for r in position.get("learning_rates", [])]  # none in checkpoints from before
        log.info("resuming from step %d (epoch %d, batch %d) of %s", step, epoch, batch_in_epoch, path)
    resumed_from = step

    model.train()
    optimizer.zero_grad(set_to_none=True)
    accumulation = config.gradient_accumulation
    examples = 0
    epochs_seen = 0
    window_loss = torch.zeros((), device=accelerator.device)
    bar = _progress(accelerator, plan.total_steps, step, unit)

    def position() -> dict[str, Any]:
        ep, b = (epoch + 1, 0) if batch_in_epoch >= plan.batches_per_epoch else (epoch, batch_in_epoch)
        return {"step": step, "epoch": ep, "batch": b, "history": history, "learning_rates": rates,
                "fingerprint": stamp, **layout}

    def checkpoint(what: str) -> None:
        checkpoints.save(accelerator, step, position())
        if accelerator.is_main_process:
            log.info("%s at step %d -> %s", what, step, checkpoints.root / f"step-{step}")

    # restored after the final checkpoint (a training is a process of its own: an exception ends it)
    stop = StopRequest().install()
    start = time.perf_counter()
    while step < plan.total_steps:
        loader.set_epoch(epoch)  # the DataLoaderShard passes it on to dataset.set_epoch
        batches = accelerator.skip_first_batches(loader, batch_in_epoch) if batch_in_epoch else loader
        if batch_in_epoch:
            batches.set_epoch(epoch)
        epochs_seen += 1
        for batch in batches:
            batch_in_epoch += 1
            boundary = batch_in_epoch % accumulation == 0
            sync = contextlib.nullcontext() if boundary else accelerator.no_sync(model)
            with sync:
                loss = loss_fn(model, batch)
                accelerator.backward(loss / accumulation)
            window_loss += loss.detach().float()
            examples += count_fn(batch)
            if not boundary:
                continue
            if config.max_grad_norm:
                accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            rate = scheduler.get_last_lr()[0]  # the rate this step applies (the scheduler moves on below)
            optimizer.step()
            if not accelerator.optimizer_step_was_skipped:
                scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            step_loss = accelerator.reduce(window_loss / accumulation, reduction="mean").item()
            window_loss.zero_()
            history.append((step, step_loss))
            rates.append((step, rate))
            _report(accelerator, bar, step, plan.total_steps, history, config.log_every, scheduler,
                    examples, start, unit)
            signum = stop.agreed(accelerator) if step < plan.total_steps else 0
            if (step % config.checkpoint_every == 0 and step < plan.total_steps) or signum:
                checkpoint("checkpoint")
            if signum:
                stop.restore()
                if accelerator.is_main_process:
                    log.warning("stopped by %s after step %d of %d; a rerun resumes from step %d",
                                signal.Signals(signum).name, step, plan.total_steps, step)
                raise SystemExit(128 + signum)
            if stop_after_steps is not None and step >= stop_after_steps:
                log.warning("stopping hard after step %d (stop_after_steps)", step)
                logging.shutdown()
                os._exit(75)
            if step >= plan.total_steps:
                break
        if batch_in_epoch >= plan.batches_per_epoch:
            epoch, batch_in_epoch = epoch + 1, 0
    seconds = time.perf_counter() - start
    if keep_final_checkpoint() and step > resumed_from:
        checkpoint("final checkpoint (kept until the workflow records the model)")
    stop.restore()
    bar.close()
    total_examples = int(accelerator.reduce(torch.tensor(examples, device=accelerator.device), "sum").item())
    result = TrainResult(steps=step, epochs_seen=epochs_seen, history=history, learning_rates=rates,
                         examples=total_examples, seconds=seconds, resumed_from=resumed_from)
    if accelerator.is_main_process:
        log.info("trained %d steps (%d in this run) in %.1f s: %.2f %ss/s, final loss %.4f",
                 step, step - resumed_from, seconds, result.examples_per_second, unit,
                 history[-1][1] if history else float("nan"))
    return model, result


def _progress(accelerator, total: int, initial: int, unit: str):
    from tqdm.auto import tqdm

    interactive = sys.stderr.isatty()
    return tqdm(total=total, initial=initial, desc="train", unit="step", dynamic_ncols=True,
                mininterval=0.5 if interactive else 30, disable=not accelerator.is_main_process)


def _report(accelerator, bar, step, total, history, log_every, scheduler, examples, start, unit) -> None:
    if not accelerator.is_main_process:
        return
    bar.update(1)
    bar.set_postfix(loss=f"{history[-1][1]:.4f}", refresh=False)
    if step % log_every == 0 or step == total:
        recent = [loss for _, loss in history[-log_every:]]
        rate = examples * accelerator.num_processes / max(time.perf_counter() - start, 1e-9)
        log.info("step %d/%d loss %.4f lr %.3g %.1f %ss/s", step, total, sum(recent) / len(recent),
                 scheduler.get_last_lr()[0], rate, unit)


# --------------------------------------------------------------------------------------------------
# the final model


def save_final(accelerator, model: torch.nn.Module, out_dir: str | os.PathLike,
               save_fn: Callable[[torch.nn.Module, Path], None]) -> None:
    """The main process saves into a temporary sibling of `out_dir`, then renames it onto `out_dir`."""
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        out = Path(out_dir)
        with atomic_dir(out) as tmp:  # a killed save's .<name>.tmp-<pid>, .<name>.old-<pid> go first
            save_fn(accelerator.unwrap_model(model, keep_fp32_wrapper=False), tmp)
        log.info("saved the model to %s", out)
    accelerator.wait_for_everyone()


def learning_check(accelerator, result: TrainResult, uniform: float | None, who: str) -> dict[str, Any]:
    """The verdict on this run's loss history (bicross.learning), logged (a warning when it did not
    learn) and returned for the model's training.json, where the end-of-run summary reads it."""
    from bicross.learning import check_learning

    check = check_learning(result.history, uniform)
    if accelerator.is_main_process:
        (log.info if check.learned else log.warning)("%s", check.message(who))
    return check.to_dict()


def finish(accelerator, checkpoint_dir: str | os.PathLike) -> None:
    """After the final model is in place: drop the checkpoints (but the final one while the workflow has
    yet to record the model: `keep_final_checkpoint`) and end the process group."""
    if accelerator.is_main_process:
        if keep_final_checkpoint():
            CheckpointDir(checkpoint_dir, keep=1).prune()
        else:
            CheckpointDir(checkpoint_dir).remove()
    accelerator.wait_for_everyone()
    accelerator.end_training()
