"""Collect per-run metric JSON files into metrics.parquet and print them as one table."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from bicross.schemas import METRICS, write_table

HEADLINE = ("mrr@10", "ndcg@10", "recall@100", "recall@1000", "map", "spearman", "pearson")
COUNTS = ("num_queries", "num_pairs")  # in metrics.parquet, not in the printed table


def collect_metrics(json_paths: Sequence[str]) -> pa.Table:
    rows = []
    for path in json_paths:
        record = json.loads(open(path).read())
        for metric, value in sorted(record["metrics"].items()):
            rows.append({"iteration": record["iteration"], "encoder": record["encoder"],
                         "split": record["split"], "metric": metric, "value": float(value)})
    return pa.Table.from_pylist(rows, schema=METRICS)


def write_metrics(json_paths: Sequence[str], out_path) -> pa.Table:
    table = collect_metrics(json_paths)
    write_table(table, out_path, METRICS)
    return table


def starting_point(encoder: str, iteration: int) -> str | None:
    """The row an encoder's row is compared with: bi-encoder k-1 of its family for bi-encoder k (its
    predecessor) and for cross-encoder k (it reranks bi-encoder k-1's candidates / learns its labels)."""
    for kind in ("bi", "cross"):
        if encoder.startswith(kind) and encoder[len(kind):] in ("", "_b") and iteration >= 1:
            return f"bi{encoder[len(kind):]}"
    return None


def format_table(table: pa.Table) -> str:
    """One row per (split, encoder, iteration), one column per metric, headline metrics first; the last
    column is what the row changed: its first metric minus the same on `starting_point`'s row."""
    cells: dict[tuple, dict[str, float]] = {}
    for row in table.to_pylist():
        cells.setdefault((row["split"], row["encoder"], row["iteration"]), {})[row["metric"]] = row["value"]
    present = {m for values in cells.values() for m in values if m not in COUNTS}
    columns = [m for m in HEADLINE if m in present] + sorted(present - set(HEADLINE))
    header = ["split", "encoder", "iter", *columns]
    if columns:
        header.append(f"change in {columns[0]}")
    lines = [header]
    for split, encoder, iteration in sorted(cells, key=lambda k: (k[0], k[2], k[1] != "bi", k[1])):
        values = cells[(split, encoder, iteration)]
        line = [split, encoder, str(iteration), *(f"{values[m]:.4f}" if m in values else "-" for m in columns)]
        if columns:
            base = starting_point(encoder, iteration)
            before = cells.get((split, base, iteration - 1), {}) if base else {}
            line.append(f"{values[columns[0]] - before[columns[0]]:+.4f} vs {base} {iteration - 1}"
                        if columns[0] in values and columns[0] in before else "")
        lines.append(line)
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines)


def best_iterations(table: pa.Table, split: str, metric: str | None = None) -> dict[str, tuple[int, float]]:
    """Per encoder, the iteration with the highest `metric` on `split` (the first headline metric present)."""
    rows = [r for r in table.to_pylist() if r["split"] == split]
    if metric is None:
        metric = next((m for m in HEADLINE if any(r["metric"] == m for r in rows)), None)
    best: dict[str, tuple[int, float]] = {}
    for r in sorted(rows, key=lambda r: r["iteration"]):
        if r["metric"] == metric and (r["encoder"] not in best or r["value"] > best[r["encoder"]][1]):
            best[r["encoder"]] = (r["iteration"], r["value"])
    return best


ENCODER_NAMES = {"bi": "bi-encoder", "cross": "cross-encoder"}


def _iterations(results) -> list[tuple[int, Path]]:
    found = [(int(m.group(1)), p) for p in Path(results).glob("iter*") if (m := re.fullmatch(r"iter(\d+)", p.name))]
    return sorted(found)


def loop_checks(results) -> list[dict]:
    """What each iteration's checks said, in order: every training job's learning verdict (its model's
    training.json, bicross.learning) and the teacher gate's decisions (bicross.gate)."""
    from bicross.learning import LearningCheck

    rows = []
    for k, folder in _iterations(results):
        for kind, fam in (("cross", ""), ("cross", "_b"), ("bi", ""), ("bi", "_b")):
            path = folder / f"{kind}{fam}" / "model" / "training.json"
            learning = json.loads(path.read_text()).get("learning") if path.is_file() else None
            if learning:
                check = LearningCheck(**learning)
                rows.append({"iteration": k, "check": "training", "encoder": f"{kind}{fam}", "passed": check.learned,
                             "message": check.message(f"{ENCODER_NAMES[kind]}{fam} {k}")})
        for path in sorted((folder / "gate").glob("*.json")):
            record = json.loads(path.read_text())
            rows.append({"iteration": k, "check": "teacher gate", "encoder": record["student"],
                         "passed": record["passed"], "message": record["message"]})
    return rows


def check_lines(results) -> list[str]:
    """The summary's lines on the loop's checks: every gate decision, every training that did not learn."""
    rows = loop_checks(results)
    lines = [r["message"] for r in rows if r["check"] == "teacher gate" or not r["passed"]]
    if not any(r["check"] == "teacher gate" for r in rows) and any(k >= 1 for k, _ in _iterations(results)):
        lines.append("teacher gate: off (no validation split), every cross-encoder taught unchecked")
    return lines


def print_summary(metrics_path, select_split: str | None = None, transductive: bool = False, results=None,
                  select_metric: str | None = None, loss_curves: Sequence[str] = ()) -> str:
    """The metrics table; with `results` the loop's checks; with `select_split` each encoder's best
    iteration on it (by `select_metric`, default the first headline metric); where the `loss_curves` are."""
    table = pq.read_table(metrics_path)
    text = format_table(table)
    if results is not None:
        text += "".join(f"\n{line}" for line in check_lines(results))
    if select_split:
        best = best_iterations(table, select_split, select_metric)
        for encoder, (it, value) in sorted(best.items()):
            shown = f"{value:.2f}" if abs(value) > 1 else f"{value:.4f}"  # x100 correlations / [0, 1] metrics
            text += f"\nbest {encoder} on {select_split}: iteration {it} ({shown})"
    if transductive:
        text += "\nTRANSDUCTIVE: the training pairs include evaluated pairs (their gold scores were never read)"
    if loss_curves:
        text += f"\nloss curves: {', '.join(str(p) for p in loss_curves)}"
    print("\nbicross metrics\n" + text, flush=True)
    return text
