"""Collect per-run metric JSON files into metrics.parquet and print them as one table."""

from __future__ import annotations

import json
from collections.abc import Sequence

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


def print_summary(metrics_path, select_split: str | None = None, transductive: bool = False) -> str:
    table = pq.read_table(metrics_path)
    text = format_table(table)
    if select_split:
        best = best_iterations(table, select_split)
        text += "\n" + "\n".join(f"best {encoder} on {select_split}: iteration {it} ({value:.2f})"
                                  for encoder, (it, value) in sorted(best.items()))
    if transductive:
        text += "\nTRANSDUCTIVE: the training pairs include evaluated pairs (their gold scores were never read)"
    print("\nbicross metrics\n" + text, flush=True)
    return text
