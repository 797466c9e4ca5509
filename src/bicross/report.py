"""Report assets: the metrics table as TSV, headline metrics against iteration as a PNG, runtimes, and
the loss curves of the training jobs (one PNG per training kind)."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pyarrow.parquet as pq

from bicross.schemas import atomic_path, write_text_atomic
from bicross.summary import HEADLINE, loop_checks


def tsv_html(tsv_path, out_path, title: str) -> None:
    """A TSV as a small self-contained HTML table: the report shows HTML in place, while it offers a TSV
    only as a download."""
    import html

    with open(tsv_path, newline="") as f:
        rows = list(csv.reader(f, delimiter="\t"))
    head, body = (rows[0], rows[1:]) if rows else ([], [])

    def cells(tag, row):
        return "".join(f"<{tag}>{html.escape(c)}</{tag}>" for c in row)

    page = ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>" + html.escape(title) + "</title>"
            "<style>body{font:13px sans-serif;margin:1em}table{border-collapse:collapse}"
            "th,td{border-bottom:1px solid #ddd;padding:3px 8px;text-align:left}th{background:#f3f3f3}</style>"
            f"</head><body><h3>{html.escape(title)}</h3><table><thead><tr>{cells('th', head)}</tr></thead><tbody>"
            + "".join(f"<tr>{cells('td', row)}</tr>" for row in body) + "</tbody></table></body></html>\n")
    write_text_atomic(page, out_path)


def metrics_tsv(metrics_path, out_path) -> None:
    rows = sorted(pq.read_table(metrics_path).to_pylist(),
                  key=lambda r: (r["split"], r["iteration"], r["encoder"], r["metric"]))
    lines = ["iteration\tencoder\tsplit\tmetric\tvalue"]
    lines += [f"{r['iteration']}\t{r['encoder']}\t{r['split']}\t{r['metric']}\t{r['value']:.4f}" for r in rows]
    write_text_atomic("\n".join(lines) + "\n", out_path)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save_figure(fig, out_path) -> None:
    tmp = atomic_path(out_path)
    fig.savefig(tmp, dpi=110, format="png")
    _pyplot().close(fig)
    os.replace(tmp, out_path)


def plot_metrics(metrics_path, out_path) -> None:
    """One panel per headline metric present; one line per (encoder, split) across iterations."""
    plt = _pyplot()
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
    _save_figure(fig, out_path)


def _smoothed(values: list[float]) -> list[float]:
    """A trailing mean over a twentieth of the steps (per-step losses of small batches are noisy)."""
    window = max(1, len(values) // 20)
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def plot_losses(model_dirs, outputs: dict[str, str]) -> None:
    """One PNG per training kind (`outputs`: recipe -> path): the loss of every step (light) and its
    trailing mean, a line per iteration and family, and the learning rate below."""
    from matplotlib.ticker import MaxNLocator

    from bicross.losscurve import curves

    plt = _pyplot()
    found = curves(model_dirs)
    for recipe, out_path in outputs.items():
        fig, (loss_ax, lr_ax) = plt.subplots(2, 1, figsize=(7.5, 5.2), sharex=True,
                                              gridspec_kw={"height_ratios": [3, 1]})
        mine = [c for c in found if c.recipe == recipe]
        for i, curve in enumerate(mine):
            color = f"C{i % 10}"
            steps = curve.table.column("step").to_pylist()
            losses = curve.table.column("loss").to_pylist()
            loss_ax.plot(steps, losses, color=color, alpha=0.25, linewidth=0.8)
            loss_ax.plot(steps, _smoothed(losses), color=color, label=curve.label)
            rates = curve.table.column("learning_rate").to_pylist()
            lr_ax.plot([s for s, r in zip(steps, rates, strict=True) if r is not None],
                       [r for r in rates if r is not None], color=color)
        if not mine:
            loss_ax.text(0.5, 0.5, "no training steps (every model of this kind was kept by the teacher gate)",
                         ha="center", va="center", transform=loss_ax.transAxes, fontsize=9)
        loss_ax.set_title(f"training loss: {recipe}")
        loss_ax.set_ylabel("loss")
        loss_ax.grid(alpha=0.3)
        if mine:
            loss_ax.legend(fontsize=8)
        lr_ax.set_ylabel("learning rate")
        lr_ax.set_xlabel("optimizer step")
        lr_ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps are whole numbers
        lr_ax.grid(alpha=0.3)
        fig.tight_layout()
        _save_figure(fig, out_path)


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
