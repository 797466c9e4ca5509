# every model family ({fam}), the task's recipe: see train_cross
rule distill_bi:
    input:
        unpack(distill_inputs),  # per task: teacher scores + qrels (retrieval) or scored pairs (sts)
    output:
        directory(f"{RES}/iter{{k}}/bi{{fam}}/model"),
    log:
        f"{RES}/logs/distill_bi/iter{{k}}{{fam}}.log",
    params:
        recipe=recipe("bi"),
        hparams=distill_hparams,
        checkpoints=lambda w, output: f"{output[0]}.checkpoints",
    threads: 4
    resources:
        gpu=0,  # CPU unless the profile's set-resources says otherwise
    benchmark:
        f"{RES}/benchmarks/distill_bi/iter{{k}}{{fam}}.tsv"
    conda:
        CONDA_ENV
    script:
        "../workflow/scripts/distill_bi.py"
