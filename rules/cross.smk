rule mine_negatives:
    input:
        unpack(mine_teacher),  # mine.filter_teacher: the scores that drop likely false negatives
        run=lambda w: f"{RES}/iter{prev(w)}/bi/run/{TRAIN_SPLIT}.parquet",
        qrels=f"{RES}/data/qrels/{TRAIN_SPLIT}.parquet",
        corpus=f"{RES}/data/corpus.parquet",
    output:
        negatives=f"{RES}/iter{{k}}/negatives.parquet",
        **mine_filter_output(),
    log:
        f"{RES}/logs/mine_negatives/iter{{k}}.log",
    params:
        rank_start=config["mine"]["rank_start"],
        rank_end=config["mine"]["rank_end"],
        negatives_per_query=config["mine"]["negatives_per_query"],
        seed=lambda w: config["seed"] + int(w.k),
        **mine_filter_params(),
    conda:
        CONDA_ENV
    script:
        "../workflow/scripts/mine_negatives.py"


# One rule per role for every model family ({fam}: "" or, with sts.mutual, "_b"); the recipe is the
# task's (bicross.train), its hyperparameters the config's sections at iteration k.
rule train_cross:
    input:
        unpack(cross_train_inputs),  # per task: mined groups (retrieval) or scored pairs (sts)
    output:
        directory(f"{RES}/iter{{k}}/cross{{fam}}/model"),
    log:
        f"{RES}/logs/train_cross/iter{{k}}{{fam}}.log",
    params:
        recipe=recipe("cross"),
        hparams=cross_hparams,
        checkpoints=lambda w, output: f"{output[0]}.checkpoints",
    threads: 4
    resources:
        gpu=0,  # CPU unless the profile's set-resources says otherwise
    benchmark:
        f"{RES}/benchmarks/train_cross/iter{{k}}{{fam}}.tsv"
    conda:
        CONDA_ENV
    script:
        "../workflow/scripts/train_cross.py"


rule rerank:
    input:
        model=f"{RES}/iter{{k}}/cross/model",
        run=lambda w: f"{RES}/iter{prev(w)}/bi/run/{w.split}.parquet",
        queries=f"{RES}/tokens/{CROSS_TOK}/queries/{{split}}.parquet",
        corpus=f"{RES}/tokens/{CROSS_TOK}/corpus.parquet",
    output:
        parted(f"{RES}/iter{{k}}/cross/run/{{split}}.parquet", CROSS_PARTS),
    log:
        part_log(f"{RES}/logs/rerank/iter{{k}}-{{split}}.log", CROSS_PARTS),
    params:
        depth=CROSS["rerank_depth"],
        part=part_of,
        parts=CROSS_PARTS,
        max_length=CROSS["max_length"],
        batch_size=CROSS["score_batch_size"],
        precision=CROSS["precision"],
    threads: 4
    resources:
        gpu=0,  # CPU unless the profile's set-resources says otherwise
    benchmark:
        part_log(f"{RES}/benchmarks/rerank/iter{{k}}-{{split}}.tsv", CROSS_PARTS)
    conda:
        CONDA_ENV
    script:
        "../workflow/scripts/rerank.py"


rule score_teacher:
    input:
        model=f"{RES}/iter{{k}}/cross/model",
        run=lambda w: f"{RES}/iter{prev(w)}/bi/run/{TRAIN_SPLIT}.parquet",
        qrels=f"{RES}/data/qrels/{TRAIN_SPLIT}.parquet",
        queries=f"{RES}/tokens/{CROSS_TOK}/queries/{TRAIN_SPLIT}.parquet",
        corpus=f"{RES}/tokens/{CROSS_TOK}/corpus.parquet",
    output:
        parted(f"{RES}/iter{{k}}/cross/teacher.parquet", CROSS_PARTS),
    log:
        part_log(f"{RES}/logs/score_teacher/iter{{k}}.log", CROSS_PARTS),
    params:
        depth=CROSS["teacher_depth"],
        part=part_of,
        parts=CROSS_PARTS,
        max_length=CROSS["max_length"],
        batch_size=CROSS["score_batch_size"],
        precision=CROSS["precision"],
    threads: 4
    resources:
        gpu=0,  # CPU unless the profile's set-resources says otherwise
    benchmark:
        part_log(f"{RES}/benchmarks/score_teacher/iter{{k}}.tsv", CROSS_PARTS)
    conda:
        CONDA_ENV
    script:
        "../workflow/scripts/score_teacher.py"


# mine.filter_teacher: cross: cross-encoder k-1 scores bi-encoder k-1's train window (and every positive),
# the scores that denoise iteration k's negatives
use rule score_teacher as score_mining_candidates with:
    input:
        model=lambda w: f"{RES}/iter{prev(w)}/cross/model",
        run=lambda w: f"{RES}/iter{prev(w)}/bi/run/{TRAIN_SPLIT}.parquet",
        qrels=f"{RES}/data/qrels/{TRAIN_SPLIT}.parquet",
        queries=f"{RES}/tokens/{CROSS_TOK}/queries/{TRAIN_SPLIT}.parquet",
        corpus=f"{RES}/tokens/{CROSS_TOK}/corpus.parquet",
    output:
        parted(f"{RES}/iter{{k}}/mine/cross-scores.parquet", CROSS_PARTS),
    log:
        part_log(f"{RES}/logs/score_mining_candidates/iter{{k}}.log", CROSS_PARTS),
    params:
        depth=config["mine"]["rank_end"],
        part=part_of,
        parts=CROSS_PARTS,
        max_length=CROSS["max_length"],
        batch_size=CROSS["score_batch_size"],
        precision=CROSS["precision"],
    benchmark:
        part_log(f"{RES}/benchmarks/score_mining_candidates/iter{{k}}.tsv", CROSS_PARTS)
