import os

from bicross import report
from bicross.logs import rule_log

o = snakemake.output
with rule_log(snakemake.log[0]):
    report.metrics_tsv(snakemake.input[0], o.table)
    report.plot_metrics(snakemake.input[0], o.plot)
    report.runtimes_tsv(snakemake.params.benchmarks, o.runtimes)
    report.changes_tsv(snakemake.input.changes, o.changes)
    report.tsv_html(o.table, o.table_html, "bicross metrics")  # the report shows HTML, offers TSV as downloads
    report.tsv_html(o.runtimes, o.runtimes_html, "bicross job runtimes")
    report.checks_tsv(os.path.dirname(snakemake.input[0]), o.checks)  # results/<exp>/ holds metrics.parquet
