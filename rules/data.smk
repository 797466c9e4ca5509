# The corpus and each split apart: adding a split prepares and tokenizes only that split, and the
# corpus (with its encodings and everything trained on them) stays up to date.
rule prepare_corpus:
    input:
        corpus_files(),
    output:
        f"{RES}/data/corpus.parquet",
    log:
        f"{RES}/logs/prepare_corpus.log",
    params:
        dataset=corpus_spec(),  # what the corpus is read from: never the splits
    conda:
        CONDA_ENV
    script:
        "../workflow/scripts/prepare_corpus.py"


# One job per split (the held-out validation split included: it and the train split carve the same
# queries out of the train split's files). The corpus is an input for its docids: qrels must name them.
rule prepare_split:
    input:
        split_files=lambda w: split_files(w.split),
        corpus=rules.prepare_corpus.output[0],
    output:
        queries=f"{RES}/data/queries/{{split}}.parquet",
        qrels=f"{RES}/data/qrels/{{split}}.parquet",
    log:
        f"{RES}/logs/prepare_split/{{split}}.log",
    params:
        job=lambda w: split_job(w.split),  # this split's source (and holdout) only: adding a split reruns no other
    wildcard_constraints:
        split=one_of(DATA_SPLITS),
    conda:
        CONDA_ENV
    script:
        "../workflow/scripts/prepare_split.py"


rule tokenize_corpus:
    input:
        rules.prepare_corpus.output[0],
    output:
        f"{RES}/tokens/{{tok}}/corpus.parquet",
    log:
        f"{RES}/logs/tokenize_corpus/{{tok}}.log",
    params:
        model=lambda w: TOKENIZERS[w.tok],
        max_length=config["tokenize"]["doc_max_length"],
    benchmark:
        f"{RES}/benchmarks/tokenize_corpus/{{tok}}.tsv"
    conda:
        CONDA_ENV
    script:
        "../workflow/scripts/tokenize_corpus.py"


rule tokenize_queries:
    input:
        rules.prepare_split.output.queries,
    output:
        f"{RES}/tokens/{{tok}}/queries/{{split}}.parquet",
    log:
        f"{RES}/logs/tokenize_queries/{{tok}}/{{split}}.log",
    params:
        model=lambda w: TOKENIZERS[w.tok],
        max_length=config["tokenize"]["query_max_length"],
    benchmark:
        f"{RES}/benchmarks/tokenize_queries/{{tok}}/{{split}}.tsv"
    wildcard_constraints:
        split=one_of(DATA_SPLITS),
    conda:
        CONDA_ENV
    script:
        "../workflow/scripts/tokenize_queries.py"
