rule summarize:
    input:
        metrics=metric_files(),
        values=values_files(),  # per query / pair, for the paired tests of every change
    output:
        metrics=f"{RES}/metrics.parquet",
        changes=f"{RES}/changes.parquet",
    log:
        f"{RES}/logs/summarize.log",
    params:
        resamples=config["evaluate"]["resamples"],
        seed=config["seed"],
    conda:
        CONDA_ENV
    script:
        "../workflow/scripts/summarize.py"


rule report_assets:
    input:
        rules.summarize.output.metrics,
        gate_files(),
        changes=rules.summarize.output.changes,
    output:
        table=report(f"{RES}/report/metrics.tsv", caption="../workflow/report/metrics_table.rst",
                     category="Metrics"),
        plot=report(f"{RES}/report/metrics.png", caption="../workflow/report/metrics_plot.rst",
                    category="Metrics"),
        runtimes=report(f"{RES}/report/runtimes.tsv", caption="../workflow/report/runtimes.rst",
                        category="Runtimes"),
        checks=report(f"{RES}/report/checks.tsv", caption="../workflow/report/checks.rst", category="Metrics"),
        changes=report(f"{RES}/report/changes.tsv", caption="../workflow/report/changes.rst", category="Metrics"),
    log:
        f"{RES}/logs/report_assets.log",
    params:
        benchmarks=f"{RES}/benchmarks",
    conda:
        CONDA_ENV
    script:
        "../workflow/scripts/report_assets.py"


# the model to take: each encoder's best iteration on the selection split, named in best/manifest.json and
# linked as best/<encoder> (bicross.best)
rule select_best:
    input:
        metrics=rules.summarize.output.metrics,
    output:
        directory(f"{RES}/best"),
    log:
        f"{RES}/logs/select_best.log",
    params:
        split=SELECT_SPLIT,
        metric=SELECT_METRIC,
        models=best_models(),
    conda:
        CONDA_ENV
    script:
        "../workflow/scripts/select_best.py"
