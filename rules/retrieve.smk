rule encode_corpus:
    input:
        tokens=f"{RES}/tokens/{TOK}/corpus.parquet",
        model=bi_model_input,
    output:
        f"{RES}/iter{{k}}/bi/embeddings/shard-{{s}}.parquet",
    log:
        f"{RES}/logs/encode_corpus/iter{{k}}-shard{{s}}.log",
    params:
        model=lambda w: bi_model(w.k),
        pooling=config["bi_encoder"]["pooling"],
        normalize=config["bi_encoder"]["normalize"],
        batch_size=config["encode"]["batch_size"],
        precision=config["encode"]["precision"],
        shards=SHARDS,
    threads: 4
    resources:
        gpu=0,  # CPU unless the profile's set-resources says otherwise
    benchmark:
        f"{RES}/benchmarks/encode_corpus/iter{{k}}-shard{{s}}.tsv"
    conda:
        CONDA_ENV
    script:
        "../workflow/scripts/encode.py"


rule encode_queries:
    input:
        tokens=f"{RES}/tokens/{TOK}/queries/{{split}}.parquet",
        model=bi_model_input,
    output:
        f"{RES}/iter{{k}}/bi/queries/{{split}}.parquet",
    log:
        f"{RES}/logs/encode_queries/iter{{k}}-{{split}}.log",
    params:
        model=lambda w: bi_model(w.k),
        pooling=config["bi_encoder"]["pooling"],
        normalize=config["bi_encoder"]["normalize"],
        batch_size=config["encode"]["batch_size"],
        precision=config["encode"]["precision"],
    threads: 4
    resources:
        gpu=0,  # CPU unless the profile's set-resources says otherwise
    benchmark:
        f"{RES}/benchmarks/encode_queries/iter{{k}}-{{split}}.tsv"
    conda:
        CONDA_ENV
    script:
        "../workflow/scripts/encode.py"


rule build_index:
    input:
        rules.encode_corpus.output[0],
    output:
        f"{RES}/iter{{k}}/bi/index/{INDEX.index}/shard-{{s}}.faiss",
    log:
        f"{RES}/logs/build_index/iter{{k}}-shard{{s}}.log",
    params:
        settings=INDEX.build_params(),
    threads: 4
    benchmark:
        f"{RES}/benchmarks/build_index/iter{{k}}-shard{{s}}.tsv"
    conda:
        CONDA_ENV
    script:
        "../workflow/scripts/build_index.py"


rule retrieve:
    input:
        queries=rules.encode_queries.output[0],
        shards=lambda w: shard_paths(w.k),
        indexes=lambda w: index_paths(w.k),
    output:
        parted(f"{RES}/iter{{k}}/bi/run/{{split}}.parquet", QUERY_PARTS),
    log:
        part_log(f"{RES}/logs/retrieve/iter{{k}}-{{split}}.log", QUERY_PARTS),
    params:
        depth=config["retrieve"]["depth"],
        search=INDEX.search_params(),
        part=part_of,
        parts=QUERY_PARTS,
    threads: 4
    benchmark:
        part_log(f"{RES}/benchmarks/retrieve/iter{{k}}-{{split}}.tsv", QUERY_PARTS)
    conda:
        CONDA_ENV
    script:
        "../workflow/scripts/retrieve.py"
