"""The teacher gate: cross-encoder k teaches bi-encoder k only if it beats bi-encoder k-1 on validation.

Validation is the dataset's dev split, or train queries held out from every training step
(bicross.data.hold_out); task sts uses its selection split. The gate compares the validation metric
of the teacher (retrieval: cross-encoder k reranking bi-encoder k-1's candidates; sts: the mean of the
families' cross-encoder k scores, the label bi-encoder k learns) with the student's (bi-encoder k-1).
A losing teacher, by `validation.losing_teacher`:

- ``skip``: no distillation, bi-encoder k is a copy of bi-encoder k-1 and the loop goes on;
- ``stop``: the gate job fails with a message naming both scores, so the run stops;
- ``warn``: distil anyway, with the warning in the log and the summary.

The decision is a small JSON file (``iter<k>/gate/<student>.json``) that the distillation job reads
and the summary and report show.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import pyarrow.parquet as pq

from bicross.errors import BicrossError
from bicross.schemas import atomic_dir, write_text_atomic

log = logging.getLogger("bicross.gate")

ACTIONS = ("skip", "stop", "warn")
DISTIL, SKIP, STOP = "distil", "skip", "stop"


class TeacherGateError(BicrossError):
    """A cross-encoder lost to its student on validation and the config says stop."""


def decide(teacher: float, student: float, *, action: str, iteration: int, student_name: str = "bi",
           split: str, metric: str, student_model: str, teachers: int = 1,
           teacher_weights: list[float] | None = None) -> dict:
    """The gate's record for iteration `iteration`; raises TeacherGateError for a losing teacher under stop."""
    if action not in ACTIONS:
        raise ValueError(f"losing_teacher must be one of {ACTIONS}, got {action!r}")
    passed = teacher >= student
    decision = DISTIL if passed or action == "warn" else action
    record = {"iteration": iteration, "student": student_name, "split": split, "metric": metric,
              "teacher": teacher, "student_score": student, "passed": passed, "action": action,
              "decision": decision, "student_model": student_model, "teachers": teachers,
              "teacher_weights": teacher_weights}
    record["message"] = gate_message(record)
    if decision == STOP:
        raise TeacherGateError(record["message"])
    (log.info if passed else log.warning)("%s", record["message"])
    return record


def gate_message(record: dict) -> str:
    k, fam = record["iteration"], record["student"][len("bi"):]
    weights = record.get("teacher_weights")
    mean = "mean" if not weights or len(set(weights)) == 1 else "weighted mean " + "/".join(f"{w:g}" for w in weights)
    teacher = f"cross-encoder{fam} {k}" if record["teachers"] == 1 else f"the cross-encoders {k} ({mean})"
    scores = (f"{teacher} {record['teacher']:.4f} vs bi-encoder{fam} {k - 1} {record['student_score']:.4f} "
              f"({record['metric']} on {record['split']})")
    if record["passed"]:
        return f"teacher gate, iteration {k}: {scores}: distilled"
    return {
        SKIP: f"teacher gate, iteration {k}: {scores}: the teacher lost, not distilled "
              f"(bi-encoder{fam} {k} is bi-encoder{fam} {k - 1}; validation.losing_teacher: skip)",
        STOP: f"teacher gate, iteration {k}: {scores}: the teacher lost; the run stops "
              f"(validation.losing_teacher: stop; skip or warn go on)",
        DISTIL: f"teacher gate, iteration {k}: {scores}: the teacher lost, distilled anyway "
                f"(validation.losing_teacher: warn)",
    }[record["decision"]]


def metric_of(metrics_json: str, metric: str) -> float:
    values = json.loads(Path(metrics_json).read_text())["metrics"]
    if metric not in values:
        raise BicrossError(f"{metrics_json}: no metric {metric!r} (validation.metric); it has {sorted(values)}")
    return float(values[metric])


def retrieval_scores(teacher_json: str, student_json: str, metric: str) -> tuple[float, float]:
    """The validation metric of cross-encoder k's rerank and of bi-encoder k-1's run (metric JSON files)."""
    return metric_of(teacher_json, metric), metric_of(student_json, metric)


def sts_scores(teacher_scores: list[str], student_scores: str, pairs: str, metric: str,
               weights: list[float] | None = None) -> tuple[float, float]:
    """Correlation with gold of the mean of the teachers' pair scores (weighted by `weights`, one per file,
    as the bi-encoder's labels weigh them) and of the student's cosines."""
    from bicross.sts.evaluate import correlations
    from bicross.sts.labels import mean_scores

    gold = pq.read_table(pairs, columns=["pair_id", "gold"])
    ids = gold.column("pair_id").to_pylist()
    _, teacher = mean_scores(teacher_scores, ids, weights)
    _, student = mean_scores([student_scores], ids)
    labels = gold.column("gold").to_pylist()
    return correlations(teacher, labels)[metric], correlations(student, labels)[metric]


def write_record(record: dict, out: str | os.PathLike) -> None:
    write_text_atomic(json.dumps(record, indent=1), out)


def read_record(path: str | os.PathLike) -> dict:
    return json.loads(Path(path).read_text())


def keep_student(record: dict, out: str | os.PathLike) -> None:
    """Bi-encoder k as a copy of bi-encoder k-1 (the gate skipped distillation), placed atomically; its
    training.json says why."""
    from bicross import provenance
    from bicross.card import CARD_FILE, write_training_card
    from bicross.losscurve import LOSS_FILE
    from bicross.models import resolve_model_path

    source = Path(resolve_model_path(record["student_model"]))
    out = Path(out)
    with atomic_dir(out) as tmp:
        # not the source's own records: this copy trained nothing (no loss curve) and gets its own card
        shutil.copytree(source, tmp, ignore=shutil.ignore_patterns("training.json", LOSS_FILE, CARD_FILE,
                                                                   "*.checkpoints"))
        (tmp / "training.json").write_text(json.dumps({"skipped": True, "gate": record, "copied_from": str(source),
                                                       "bicross_version": provenance.version(),
                                                       "bicross_commit": provenance.commit()}, indent=1))
        write_training_card(tmp, final=out)
    log.info("%s; copied %s to %s", record["message"], source, out)
