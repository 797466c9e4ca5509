"""Report assets: the metrics table as TSV, headline metrics against iteration as a PNG, runtimes."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pyarrow.parquet as pq

from bicross.schemas import atomic_path, write_text_atomic
from bicross.summary import HEADLINE, loop_checks


def metrics_tsv(metrics_path, out_path) -> None:
    rows = sorted(pq.read_table(metrics_path).to_pylist(),
                  key=lambda r: (r["split"], r["iteration"], r["encoder"], r["metric"]))
    lines = ["iteration\tencoder\tsplit\tmetric\tvalue"]
    lines += [f"{r['iteration']}\t{r['encoder']}\t{r['split']}\t{r['metric']}\t{r['value']:.4f}" for r in rows]
    write_text_atomic("\n".join(lines) + "\n", out_path)


def plot_metrics(metrics_path, out_path) -> None:
    """One panel per headline metric present; one line per (encoder, split) across iterations."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = pq.read_table(metrics_path).to_pylist()
    metrics = [m for m in HEADLINE if any(r["metric"] == m for r in rows)][:4]
    fig, axes = plt.subplots(1, max(len(metrics), 1), figsize=(4.2 * max(len(metrics), 1), 3.4), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=False):
        series: dict[tuple, list] = {}
        for r in rows:
            if r["metric"] == metric:
                series.setdefault((r["encoder"], r["split"]), []).append((r["iteration"], r["value"]))
        for (encoder, split), points in sorted(series.items()):
            points.sort()
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o" if encoder == "bi" else "s",
                    linestyle="-" if encoder == "bi" else "--", label=f"{encoder} ({split})")
        ax.set_title(metric)
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
        ax.set_xticks(sorted({r["iteration"] for r in rows}))
        ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = atomic_path(out_path)
    fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    os.replace(tmp, out_path)


def read_benchmarks(benchmark_dir) -> list[tuple[str, str, float, str]]:
    """Snakemake's per-job `benchmark:` files: (rule, job, seconds, max RSS in MB) each, e.g.
    ("train_cross", "train_cross/iter1", 963.1, "2821.11")."""
    jobs = []
    for path in sorted(Path(benchmark_dir).rglob("*.tsv")):
        with open(path) as f:
            row = next(csv.DictReader(f, delimiter="\t"), None)
        if row:
            rel = path.relative_to(benchmark_dir)
            rule = rel.parts[0] if len(rel.parts) > 1 else rel.stem
            jobs.append((rule, rel.with_suffix("").as_posix(), float(row["s"]), row["max_rss"]))
    return jobs


def runtimes_tsv(benchmark_dir, out_path) -> None:
    """Snakemake's per-job `benchmark:` files gathered into one table (rule, job, seconds, max RSS)."""
    lines = ["rule\tjob\tseconds\tmax_rss_mb"]
    lines += [f"{rule}\t{job}\t{seconds:.1f}\t{rss}" for rule, job, seconds, rss in read_benchmarks(benchmark_dir)]
    write_text_atomic("\n".join(lines) + "\n", out_path)


def checks_tsv(results, out_path) -> None:
    """The loop's checks (bicross.summary.loop_checks): learning verdicts and teacher-gate decisions."""
    lines = ["iteration\tcheck\tencoder\tpassed\tmessage"]
    lines += [f"{r['iteration']}\t{r['check']}\t{r['encoder']}\t{r['passed']}\t{r['message']}"
              for r in loop_checks(results)]
    write_text_atomic("\n".join(lines) + "\n", out_path)


def changes_tsv(changes_path, out_path) -> None:
    """The paired tests of every change (bicross.summary.paired_changes): difference, 95% interval, p."""
    lines = ["split\tencoder\titeration\tvs_encoder\tvs_iteration\tmetric\tdifference\tlow\thigh\tp\tn\ttest"]
    lines += [f"{r['split']}\t{r['encoder']}\t{r['iteration']}\t{r['base_encoder']}\t{r['base_iteration']}\t"
              f"{r['metric']}\t{r['difference']:+.4f}\t{r['low']:+.4f}\t{r['high']:+.4f}\t{r['p']:.4f}\t{r['n']}\t"
              f"{r['test']}" for r in pq.read_table(changes_path).to_pylist()]
    write_text_atomic("\n".join(lines) + "\n", out_path)
