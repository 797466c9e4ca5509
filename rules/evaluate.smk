rule evaluate_bi:
    input:
        run=f"{RES}/iter{{k}}/bi/run/{{split}}.parquet",
        qrels=f"{RES}/data/qrels/{{split}}.parquet",
    output:
        metrics=f"{RES}/iter{{k}}/metrics/bi-{{split}}.json",
        values=f"{RES}/iter{{k}}/metrics/bi-{{split}}.values.parquet",  # per query, for the paired tests
    log:
        f"{RES}/logs/evaluate_bi/iter{{k}}-{{split}}.log",
    params:
        encoder="bi",
        relevance_level=config["evaluate"]["relevance_level"],
    conda:
        CONDA_ENV
    script:
        "../workflow/scripts/evaluate.py"


use rule evaluate_bi as evaluate_cross with:
    input:
        run=f"{RES}/iter{{k}}/cross/run/{{split}}.parquet",
        qrels=f"{RES}/data/qrels/{{split}}.parquet",
    output:
        metrics=f"{RES}/iter{{k}}/metrics/cross-{{split}}.json",
        values=f"{RES}/iter{{k}}/metrics/cross-{{split}}.values.parquet",
    log:
        f"{RES}/logs/evaluate_cross/iter{{k}}-{{split}}.log",
    params:
        encoder="cross",
        relevance_level=config["evaluate"]["relevance_level"],
