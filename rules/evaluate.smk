rule evaluate_bi:
    input:
        run=rules.retrieve.output[0],
        qrels=f"{RES}/data/qrels/{{split}}.parquet",
    output:
        f"{RES}/iter{{k}}/metrics/bi-{{split}}.json",
    log:
        f"{RES}/logs/evaluate_bi/iter{{k}}-{{split}}.log",
    params:
        encoder="bi",
        relevance_level=config["evaluate"]["relevance_level"],
    conda:
        "../envs/bicross.yaml"
    script:
        "../workflow/scripts/evaluate.py"


rule summarize:
    input:
        metric_files(),
    output:
        f"{RES}/metrics.parquet",
    log:
        f"{RES}/logs/summarize.log",
    conda:
        "../envs/bicross.yaml"
    script:
        "../workflow/scripts/summarize.py"


use rule evaluate_bi as evaluate_cross with:
    input:
        run=rules.rerank.output[0],
        qrels=f"{RES}/data/qrels/{{split}}.parquet",
    output:
        f"{RES}/iter{{k}}/metrics/cross-{{split}}.json",
    log:
        f"{RES}/logs/evaluate_cross/iter{{k}}-{{split}}.log",
    params:
        encoder="cross",
        relevance_level=config["evaluate"]["relevance_level"],
