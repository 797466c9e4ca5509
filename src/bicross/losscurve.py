"""The loss curve of a training job: its per-step loss and learning rate as ``loss.parquet`` in the model
folder (written with the model by `bicross.train.run`), and the curves of a run's models for the report.

A resumed job restores the steps before its checkpoint (position.json), so the table holds every step
once, in order; `read_loss_table` refuses one whose steps are not strictly increasing.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from bicross.card import model_place
from bicross.errors import InputError
from bicross.schemas import LOSS, write_table

log = logging.getLogger("bicross.losscurve")

LOSS_FILE = "loss.parquet"


def loss_table(history: list[tuple[int, float]], learning_rates: list[tuple[int, float]]) -> pa.Table:
    """(step, loss) and (step, learning rate) pairs as one table; a step without a recorded rate (resumed
    from a checkpoint written before rates were kept) gets a null one."""
    rates = dict(learning_rates)
    steps = [int(s) for s, _ in history]
    return pa.table({"step": steps, "loss": [float(v) for _, v in history],
                     "learning_rate": [rates.get(s) for s in steps]}, schema=LOSS)


def write_loss_table(history, learning_rates, model_dir: str | os.PathLike) -> Path:
    path = Path(model_dir) / LOSS_FILE
    write_table(loss_table(history, learning_rates), path, LOSS)
    return path


def read_loss_table(path: str | os.PathLike) -> pa.Table:
    """A loss table, checked: the LOSS columns, steps strictly increasing (row numbers from 1)."""
    table = pq.read_table(path)
    missing = [name for name in LOSS.names if name not in table.column_names]
    if missing:
        raise InputError(path, None, f"columns {LOSS.names}", f"no column {missing[0]!r}")
    steps = table.column("step").to_pylist()
    for row, (before, after) in enumerate(zip(steps, steps[1:], strict=False), start=2):
        if after <= before:
            raise InputError(path, row, f"a step above {before} (steps strictly increasing)", str(after))
    return table.select(LOSS.names)


@dataclass
class Curve:
    """One training job's curve for the report: its recipe (the training kind) and its legend label."""

    recipe: str
    label: str
    table: pa.Table


def curves(model_dirs) -> list[Curve]:
    """The curves of the trained models among `model_dirs`, by iteration. A model the teacher gate kept
    as a copy of its predecessor (training.json ``skipped``) trained nothing and has none."""
    found = []
    for model_dir in model_dirs:
        model_dir = Path(model_dir)
        summary = json.loads((model_dir / "training.json").read_text())
        if summary.get("skipped"):
            continue
        if not (model_dir / LOSS_FILE).is_file():
            log.warning("%s has no %s (trained before loss tables were kept): no curve", model_dir, LOSS_FILE)
            continue
        place = model_place(model_dir)
        label = place.label if place else model_dir.parent.name
        found.append(Curve(summary["recipe"], label, read_loss_table(model_dir / LOSS_FILE)))
    return found
