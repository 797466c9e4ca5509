rule summarize:
    input:
        metric_files(),
    output:
        f"{RES}/metrics.parquet",
    log:
        f"{RES}/logs/summarize.log",
    conda:
        CONDA_ENV
    script:
        "../workflow/scripts/summarize.py"


rule report_assets:
    input:
        rules.summarize.output[0],
        gate_files(),
    output:
        table=report(f"{RES}/report/metrics.tsv", caption="../workflow/report/metrics_table.rst",
                     category="Metrics"),
        plot=report(f"{RES}/report/metrics.png", caption="../workflow/report/metrics_plot.rst",
                    category="Metrics"),
        runtimes=report(f"{RES}/report/runtimes.tsv", caption="../workflow/report/runtimes.rst",
                        category="Runtimes"),
        checks=report(f"{RES}/report/checks.tsv", caption="../workflow/report/checks.rst", category="Metrics"),
    log:
        f"{RES}/logs/report_assets.log",
    params:
        benchmarks=f"{RES}/benchmarks",
    conda:
        CONDA_ENV
    script:
        "../workflow/scripts/report_assets.py"
