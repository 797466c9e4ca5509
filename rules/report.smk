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
        table_html=report(f"{RES}/report/metrics.html", caption="../workflow/report/metrics_table.rst",
                          category="Metrics"),
        runtimes=report(f"{RES}/report/runtimes.tsv", caption="../workflow/report/runtimes.rst",
                        category="Runtimes"),
        runtimes_html=report(f"{RES}/report/runtimes.html", caption="../workflow/report/runtimes.rst",
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


# One plot per training kind (recipe): each trained model's loss.parquet, a line per iteration and family.
rule loss_curves:
    input:
        trained_models(),
    output:
        [report(path, caption="../workflow/report/loss_curves.rst", category="Training") for path in
         loss_curve_files()],
    log:
        f"{RES}/logs/loss_curves.log",
    params:
        kinds=trained_kinds(),
    conda:
        CONDA_ENV
    script:
        "../workflow/scripts/loss_curves.py"


# The model cards with the metrics, written BESIDE each model folder (iter<k>/<role><fam>/README.md), so
# the model folders, inputs of every later stage, are never touched after training (bicross.card).
rule model_cards:
    input:
        models=trained_models(),
        metrics=rules.summarize.output[0],
    output:
        model_card_files(),
    log:
        f"{RES}/logs/model_cards.log",
    params:
        experiment=config["experiment"],
        sections=model_card_sections(),
        train_split=TRAIN_SPLIT,
    conda:
        CONDA_ENV
    script:
        "../workflow/scripts/model_cards.py"
