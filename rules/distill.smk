rule distill_bi:
    input:
        unpack(distill_inputs),  # per task: teacher scores + qrels (retrieval) or scored pairs (sts)
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
        CONDA_ENV
    script:
        "../workflow/scripts/distill_bi.py"
