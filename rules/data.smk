rule prepare_data:
    input:
        dataset_files(),
    output:
        corpus=f"{RES}/data/corpus.parquet",
        queries=expand(f"{RES}/data/queries/{{split}}.parquet", split=DATA_SPLITS),
        qrels=expand(f"{RES}/data/qrels/{{split}}.parquet", split=DATA_SPLITS),
    log:
        f"{RES}/logs/prepare_data.log",
    params:
        dataset=config["dataset"],
        holdout=HOLDOUT,
        outdir=lambda w, output: os.path.dirname(output.corpus),
    conda:
        CONDA_ENV
    script:
        "../workflow/scripts/prepare_data.py"


rule tokenize:
    input:
        corpus=rules.prepare_data.output.corpus,
        queries=rules.prepare_data.output.queries,
    output:
        corpus=f"{RES}/tokens/{{tok}}/corpus.parquet",
        queries=expand(f"{RES}/tokens/{{{{tok}}}}/queries/{{split}}.parquet", split=DATA_SPLITS),
    log:
        f"{RES}/logs/tokenize/{{tok}}.log",
    params:
        model=lambda w: TOKENIZERS[w.tok],
        splits=DATA_SPLITS,
        query_max_length=config["tokenize"]["query_max_length"],
        doc_max_length=config["tokenize"]["doc_max_length"],
    benchmark:
        f"{RES}/benchmarks/tokenize/{{tok}}.tsv"
    conda:
        CONDA_ENV
    script:
        "../workflow/scripts/tokenize.py"
