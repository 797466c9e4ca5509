rule distill_bi:
    input:
        teacher=rules.score_teacher.output[0],
        qrels=f"{RES}/data/qrels/{TRAIN_SPLIT}.parquet",
        queries=f"{RES}/tokens/{TOK}/queries/{TRAIN_SPLIT}.parquet",
        corpus=f"{RES}/tokens/{TOK}/corpus.parquet",
        init=distill_init_input,
    output:
        directory(f"{RES}/iter{{k}}/bi/model"),
    log:
        f"{RES}/logs/distill_bi/iter{{k}}.log",
    params:
        hparams=distill_hparams,
        checkpoints=lambda w, output: f"{output[0]}.checkpoints",
    threads: 4
    resources:
        gpu=0,  # CPU unless the profile's set-resources says otherwise
    benchmark:
        f"{RES}/benchmarks/distill_bi/iter{{k}}.tsv"
    conda:
        "../envs/bicross.yaml"
    script:
        "../workflow/scripts/distill_bi.py"
