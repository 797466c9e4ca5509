"""One training entry point, one recipe per training kind.

    accelerate launch [...] -m bicross.train RECIPE --INPUT FILE ... --out DIR --checkpoints DIR \\
        --hparams '{"epochs": 1}' [--log FILE]

The workflow's `train_cross` and `distill_bi` rules launch it through `bicross.launch`. A recipe is a
small module of this package that declares:

- ``Hparams``: a dataclass of its hyperparameters, extending the shared optimisation settings
  (`bicross.hparams.TrainConfig`); the one place a default lives, with a one-line help each;
- ``INPUTS``: its input files (name -> help; the names in ``MANY`` take several files);
- ``from_config(sections, **context)``: its hyperparameters from the workflow config's sections;
- ``prepare(hp, inputs, accelerator) -> Job``: its dataset and collator, the model (loaded by the same
  classes inference uses), its loss from `bicross.losses`, and how it saves.

`run` does the rest for every recipe: the accelerator, `bicross.training.train` with checkpoints,
the learning check, the atomic save with ``training.json`` (settings, result, bicross version and
commit), ``loss.parquet`` (the loss and learning rate of every step, `bicross.losscurve`) and a
``README.md`` model card (`bicross.card`; the workflow's `model_cards` adds the metrics).
"""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

log = logging.getLogger("bicross.train")

# recipe name -> module; retrieval: cross-encoder (group CE) and bi-encoder distillation; task sts:
# the Trans-Encoder's two directions
RECIPES = {
    "cross": "bicross.train.cross",
    "distill": "bicross.train.distill",
    "sts-cross": "bicross.train.sts_cross",
    "sts-bi": "bicross.train.sts_bi",
}


# the recipe of each role, per task: the one place the task switch of training lives
ROLES = {"retrieval": {"cross": "cross", "bi": "distill"}, "sts": {"cross": "sts-cross", "bi": "sts-bi"}}
SECOND_FAMILY_SEED = 500  # sts.mutual: the second family's seeds differ from the first's


def recipe_for(task: str, role: str) -> str:
    """The recipe that trains `role` ("cross" or "bi") in `task`."""
    return ROLES[task][role]


def recipe(name: str):
    """The recipe module of that name."""
    if name not in RECIPES:
        from bicross.errors import ConfigError

        raise ConfigError(f"unknown training recipe {name!r}; known: {sorted(RECIPES)}")
    return importlib.import_module(RECIPES[name])


@dataclass
class Job:
    """What a recipe prepares for `run`: model, data, loss, and how the model is saved."""

    model: Any
    dataset: Any
    collate: Callable[[list[Any]], Any]
    loss_fn: Callable[[Any, Any], Any]
    count_fn: Callable[[Any], int]
    save: Callable[[Any, Path], None]  # (unwrapped model, folder)
    unit: str  # what count_fn counts, for the log: "pair", "group"
    who: str  # "the cross-encoder", for the learning check's message
    uniform: float | None  # the loss of a model that scores everything alike (bicross.learning)
    info: dict[str, Any] = field(default_factory=dict)  # recipe facts for training.json


def hparams_for(config: dict[str, Any], name: str, k: int, model: str, family: str = "") -> dict[str, Any]:
    """Recipe `name`'s hyperparameters for iteration k from the workflow config: its sections with the
    iteration's overrides applied, the model to start from, and the seed (config seed + the recipe's
    offset + k, + 500 for the second family)."""
    from bicross.runconfig import sections_at

    module = recipe(name)
    seed = int(config["seed"]) + module.SEED_OFFSET + int(k) + (SECOND_FAMILY_SEED if family else 0)
    return module.from_config(sections_at(config, k), model=model, seed=seed, families=families(config))


def families(config: dict[str, Any]) -> int:
    """Model families in the run: 2 with sts.mutual, else 1."""
    return 2 if (config.get("sts") or {}).get("mutual") else 1


def pick(cls, section: dict[str, Any]) -> dict[str, Any]:
    """The keys of a config section that are fields of a recipe's dataclass (the rest belong to other
    stages: rerank_depth, init, ...)."""
    return {f.name: section[f.name] for f in fields(cls) if f.name in section}


class _Reads(dict):
    """A config section that notes which of its keys are read."""

    def __init__(self, name: str, values: dict[str, Any], seen: set[tuple[str, str]]):
        super().__init__(values)
        self.name, self.seen = name, seen

    def __getitem__(self, key: str) -> Any:
        self.seen.add((self.name, key))
        return super().__getitem__(key)


def trained_keys(config: dict[str, Any], task: str) -> set[tuple[str, str]]:
    """(section, key) of every config key that the task's training recipes read: the keys that take a
    value per iteration (`overrides:`) through hparams_for."""
    from bicross.runconfig import sections_at

    seen: set[tuple[str, str]] = set()
    sections = {name: _Reads(name, values, seen) for name, values in sections_at(config, 1).items()}
    for role in ("cross", "bi"):
        recipe(recipe_for(task, role)).from_config(sections, model="", seed=0, families=families(config))
    return {(name, key) for name, key in seen if key not in CONTEXT}


CONTEXT = ("model", "seed")  # hparams_for's own: the model to start from (the iteration's init) and the seed


def input_files(inputs: dict[str, str | list[str]]) -> list[str]:
    return [p for value in inputs.values() for p in ([value] if isinstance(value, str) else value)]


def run(name: str, inputs: dict[str, str | list[str]], out, checkpoints, hparams: dict[str, Any] | None = None,
        log_path: str | None = None, stop_after_steps: int | None = None) -> dict[str, Any]:
    """Train recipe `name` on `inputs` and save the model to `out`; returns the summary also written to
    ``<out>/training.json``."""
    from bicross import provenance
    from bicross.card import write_training_card
    from bicross.losscurve import write_loss_table
    from bicross.training import file_signature, finish, learning_check, save_final, start, train

    module = recipe(name)
    hp = module.Hparams.from_dict(hparams)
    accelerator = start(hp, log_path)
    job = module.prepare(hp, inputs, accelerator)
    settings = {"recipe": name, "hparams": asdict(hp), "inputs": [file_signature(p) for p in input_files(inputs)]}
    model, result = train(accelerator, job.model, job.dataset, job.collate, job.loss_fn, hp, checkpoints,
                          settings=settings, count_fn=job.count_fn, unit=job.unit, stop_after_steps=stop_after_steps)
    summary = {"recipe": name, "hparams": asdict(hp), "inputs": settings["inputs"], **job.info,
               "num_processes": accelerator.num_processes, "mixed_precision": accelerator.mixed_precision, **result.to_dict(),
               f"{job.unit}s_per_second": result.examples_per_second,
               "learning": learning_check(accelerator, result, job.uniform, job.who),
               "bicross_version": provenance.version(), "bicross_commit": provenance.commit()}

    def save(unwrapped, path: Path) -> None:
        job.save(unwrapped, path)
        (path / "training.json").write_text(json.dumps(summary, indent=1))
        write_loss_table(result.history, result.learning_rates, path)
        write_training_card(path, final=out)

    save_final(accelerator, model, out, save)
    if accelerator.is_main_process:
        log.info("training %ss/second: %.2f (%d %ss in %.1f s, %d processes)", job.unit, result.examples_per_second,
                 result.examples, job.unit, result.seconds, accelerator.num_processes)
    finish(accelerator, checkpoints)
    return summary
