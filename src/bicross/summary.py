"""Collect per-run metric JSON files into metrics.parquet and print them as one table."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bicross.schemas import CHANGES, METRICS, write_table

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


def changes_file(metrics_path) -> Path:
    """The paired tests (CHANGES) beside a metrics.parquet: changes.parquet."""
    return Path(metrics_path).with_name("changes.parquet")


def write_metrics(json_paths: Sequence[str], out_path) -> pa.Table:
    table = collect_metrics(json_paths)
    write_table(table, out_path, METRICS)
    return table


def values_files(json_paths: Sequence[str]) -> dict[tuple, str]:
    """(split, encoder, iteration) -> the per-query (per-pair) values written beside its metrics JSON."""
    from bicross.evaluate import values_path

    found = {}
    for path in json_paths:
        record = json.loads(open(path).read())
        if Path(values_path(path)).is_file():
            found[(record["split"], record["encoder"], record["iteration"])] = values_path(path)
    return found


def starting_point(encoder: str, iteration: int) -> str | None:
    """The row an encoder's row is compared with: bi-encoder k-1 of its family for bi-encoder k (its
    predecessor) and for cross-encoder k (it reranks bi-encoder k-1's candidates / learns its labels)."""
    for kind in ("bi", "cross"):
        if encoder.startswith(kind) and encoder[len(kind):] in ("", "_b") and iteration >= 1:
            return f"bi{encoder[len(kind):]}"
    return None


def baseline(encoder: str) -> str:
    """The row every other row of a family is also compared with: bi-encoder 0 of its family."""
    return "bi_b" if encoder.endswith("_b") else "bi"


def headline_metric(table: pa.Table) -> str | None:
    """The metric the changes are measured in: the first headline metric present (else the first other)."""
    present = {m for m in table.column("metric").to_pylist() if m not in COUNTS}
    return next((m for m in HEADLINE if m in present), min(present, default=None))


def comparisons(rows) -> list[tuple[tuple, tuple]]:
    """(row, the row it is compared with) for every change the summary shows, rows as (split, encoder,
    iteration): each row against `starting_point`, and against its family's bi-encoder 0 when that is not
    its starting point already."""
    present = set(rows)
    found = []
    for split, encoder, iteration in sorted(present):
        base = starting_point(encoder, iteration)
        if base and (split, base, iteration - 1) in present:
            found.append(((split, encoder, iteration), (split, base, iteration - 1)))
        first = (split, baseline(encoder), 0)
        if first != (split, encoder, iteration) and first in present and (base, iteration - 1) != first[1:]:
            found.append(((split, encoder, iteration), first))
    return found


def change_between(a: dict, b: dict, metric: str, resamples: int, seed: int):
    """The paired test of values `a` against `b` (read_values) over the ids both have."""
    from bicross.significance import mean_change, spearman_change

    ids = sorted(a.keys() & b.keys())  # the same queries (pairs) on both sides
    if metric == "spearman":
        return spearman_change([a[i][0] for i in ids], [b[i][0] for i in ids], [a[i][1] for i in ids],
                               resamples, seed)
    return mean_change([a[i] for i in ids], [b[i] for i in ids], resamples, seed)


def read_values(path, metric: str) -> dict:
    """A values file as id -> value (retrieval: the metric of each query) or id -> (score, gold) (sts)."""
    table = pq.read_table(path)
    if "pair_id" in table.column_names:
        return dict(zip(table.column("pair_id").to_pylist(),
                        zip(table.column("score").to_pylist(), table.column("gold").to_pylist(), strict=True),
                        strict=True))
    table = table.filter(pc.equal(table.column("metric"), metric))
    return dict(zip(table.column("qid").to_pylist(), table.column("value").to_pylist(), strict=True))


def paired_changes(table: pa.Table, values_files: dict[tuple, str], resamples: int, seed: int) -> pa.Table:
    """CHANGES: the paired test of every comparison in the headline metric (bicross.significance), from
    the per-query (sts: per-pair) values each evaluation wrote; rows without a values file are left out."""
    metric = headline_metric(table)
    rows = {(r["split"], r["encoder"], r["iteration"]) for r in table.to_pylist()}
    loaded: dict[tuple, dict] = {}
    out = []
    for row, base in comparisons(rows):
        if row not in values_files or base not in values_files:
            continue
        a, b = (loaded.setdefault(key, read_values(values_files[key], metric)) for key in (row, base))
        change = change_between(a, b, metric, resamples, seed)
        out.append({"split": row[0], "encoder": row[1], "iteration": row[2], "base_encoder": base[1],
                    "base_iteration": base[2], "metric": metric, "difference": change.difference,
                    "low": change.low, "high": change.high, "p": change.p, "n": change.n, "test": change.test})
    return pa.Table.from_pylist(out, schema=CHANGES)


def _change_text(record: dict) -> str:
    from bicross.significance import Change

    change = Change(record["difference"], record["low"], record["high"], record["p"], record["test"], record["n"])
    return f"{change.text()} vs {record['base_encoder']} {record['base_iteration']}"


def format_table(table: pa.Table, changes: pa.Table | None = None) -> str:
    """One row per (split, encoder, iteration), one column per metric, headline metrics first; the last
    column is what the row changed: its first metric minus the same on `starting_point`'s row. With
    `changes` (paired_changes) each change has its 95% interval and p-value, and a further column compares
    the row with its family's bi-encoder 0 where that is not its starting point."""
    cells: dict[tuple, dict[str, float]] = {}
    for row in table.to_pylist():
        cells.setdefault((row["split"], row["encoder"], row["iteration"]), {})[row["metric"]] = row["value"]
    present = {m for values in cells.values() for m in values if m not in COUNTS}
    columns = [m for m in HEADLINE if m in present] + sorted(present - set(HEADLINE))
    tested = {(c["split"], c["encoder"], c["iteration"], c["base_encoder"], c["base_iteration"]): c
              for c in (changes.to_pylist() if changes is not None else [])}
    against_first = any(c["base_iteration"] == 0 and c["iteration"] > 1 or c["encoder"] == "cross-supervised"
                        for c in tested.values())
    header = ["split", "encoder", "iter", *columns]
    if columns:
        header.append(f"change in {columns[0]}")
        if against_first:
            header.append("vs bi-encoder 0")
    lines = [header]
    for split, encoder, iteration in sorted(cells, key=lambda k: (k[0], k[2], k[1] != "bi", k[1])):
        values = cells[(split, encoder, iteration)]
        line = [split, encoder, str(iteration), *(f"{values[m]:.4f}" if m in values else "-" for m in columns)]
        if columns:
            base = starting_point(encoder, iteration)
            before = cells.get((split, base, iteration - 1), {}) if base else {}
            record = tested.get((split, encoder, iteration, base, iteration - 1))
            if record:
                line.append(_change_text(record))
            else:
                line.append(f"{values[columns[0]] - before[columns[0]]:+.4f} vs {base} {iteration - 1}"
                            if columns[0] in values and columns[0] in before else "")
            if against_first:
                first = tested.get((split, encoder, iteration, baseline(encoder), 0))
                line.append(_change_text(first) if first and (base, iteration - 1) != (first["base_encoder"], 0)
                            else "")
        lines.append(line)
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines)
    if tested:
        first = next(iter(tested.values()))
        text += (f"\nchanges in {first['metric']}: difference [95% interval] p over the same "
                 f"{'pairs' if first['metric'] == 'spearman' else 'queries'}; {first['test']}; seeded")
    return text


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
    training.json, bicross.learning), what the mining filter dropped and the teacher gate's decisions
    (bicross.gate)."""
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
        path = folder / "mine" / "filter.json"
        if path.is_file():
            rows.append(mining_filter_row(k, json.loads(path.read_text())))
        for path in sorted((folder / "gate").glob("*.json")):
            record = json.loads(path.read_text())
            rows.append({"iteration": k, "check": "teacher gate", "encoder": record["student"],
                         "passed": record["passed"], "message": record["message"]})
    return rows


def mining_filter_row(k: int, record: dict) -> dict:
    """A loop_checks row on iteration k's denoised mining (its mine/filter.json, bicross.pipeline.mine)."""
    from bicross.mining import filter_message

    label = f"mining filter, iteration {k}"
    message = (filter_message(record, label=f"{label} ({record['teacher']}, {record['scale']})") if record["teacher"]
               else f"{label}: none (no cross-encoder before iteration {k}); {record['topped_up']} queries topped up")
    return {"iteration": k, "check": "mining filter", "encoder": "negatives", "passed": True, "message": message}


def check_lines(results) -> list[str]:
    """The summary's lines on the loop's checks: every gate decision and mining filter, every training
    that did not learn."""
    rows = loop_checks(results)
    lines = [r["message"] for r in rows if r["check"] in ("teacher gate", "mining filter") or not r["passed"]]
    if not any(r["check"] == "teacher gate" for r in rows) and any(k >= 1 for k, _ in _iterations(results)):
        lines.append("teacher gate: off (no validation split), every cross-encoder taught unchecked")
    return lines


def print_summary(metrics_path, select_split: str | None = None, transductive: bool = False, results=None,
                  select_metric: str | None = None, loss_curves: Sequence[str] = ()) -> str:
    """The metrics table; with `results` the loop's checks; with `select_split` each encoder's best
    iteration on it (by `select_metric`, default the first headline metric); where the `loss_curves` are."""
    table = pq.read_table(metrics_path)
    changes_path = changes_file(metrics_path)
    text = format_table(table, pq.read_table(changes_path) if changes_path.is_file() else None)
    if results is not None:
        text += "".join(f"\n{line}" for line in check_lines(results))
    if select_split:
        best = best_iterations(table, select_split, select_metric)
        for encoder, (it, value) in sorted(best.items()):
            shown = f"{value:.2f}" if abs(value) > 1 else f"{value:.4f}"  # x100 correlations / [0, 1] metrics
            text += f"\nbest {encoder} on {select_split}: iteration {it} ({shown})"
    if results is not None and (Path(results) / "best" / "manifest.json").is_file():
        text += f"\nthe best models: {Path(results) / 'best'} (manifest.json; best/<encoder> links each)"
    if transductive:
        text += "\nTRANSDUCTIVE: the training pairs include evaluated pairs (their gold scores were never read)"
    if loss_curves:
        text += f"\nloss curves: {', '.join(str(p) for p in loss_curves)}"
    print("\nbicross metrics\n" + text, flush=True)
    return text
