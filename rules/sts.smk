# task: sts (Trans-Encoder). Iteration k: bi-encoder k-1 scores the unlabelled training pairs ->
# cross-encoder k learns them (train_cross) -> cross-encoder k scores them -> bi-encoder k learns
# those scores (distill_bi). Every encoder also scores the evaluation splits; Spearman/Pearson follow.


# One job per split: adding an evaluation set prepares (and scores) only that set.
rule prepare_pairs:
    input:
        lambda w: dataset_files(w.split),
    output:
        f"{RES}/data/pairs/{{split}}.parquet",
    log:
        f"{RES}/logs/prepare_pairs/{{split}}.log",
    params:
        spec=lambda w: pair_set_spec(w.split),  # this split's source only: adding a split reruns no other
        # evaluated splits need gold scores. A check, not a setting (the pairs written are the same), so
        # a function of the output, which Snakemake does not track: evaluating a split reruns no preparation
        labelled=lambda w, output: w.split in LABELLED_SPLITS,
    wildcard_constraints:
        split=one_of(pair_splits()),
    conda:
        CONDA_ENV
    script:
        "../workflow/scripts/prepare_pairs.py"


rule unlabelled_pairs:
    input:
        expand(f"{RES}/data/pairs/{{split}}.parquet", split=STS["train_splits"]),
    output:
        f"{RES}/data/pairs/{UNLABELLED}.parquet",
    log:
        f"{RES}/logs/unlabelled_pairs.log",
    conda:
        CONDA_ENV
    script:
        "../workflow/scripts/unlabelled_pairs.py"


# sts.augment: new pairs from the training sentences (nearest neighbours under bi-encoder 0, random others).
rule augment_pairs:
    input:
        pairs=f"{RES}/data/pairs/{UNLABELLED}.parquet",
    output:
        f"{RES}/data/pairs/{AUGMENTED}.parquet",
    log:
        f"{RES}/logs/augment_pairs.log",
    params:
        model=lambda w: bi_model(0),
        neighbours=AUGMENT.get("neighbours", 0),
        random=AUGMENT.get("random", 0),
        seed=config["seed"],
        max_length=STS["max_length"],
        batch_size=config["encode"]["batch_size"],
        precision=config["encode"]["precision"],
        pooling=config["bi_encoder"]["pooling"],
        normalize=config["bi_encoder"]["normalize"],
    threads: 4
    resources:
        gpu=0,  # CPU unless the profile's set-resources says otherwise
    benchmark:
        f"{RES}/benchmarks/augment_pairs.tsv"
    conda:
        CONDA_ENV
    script:
        "../workflow/scripts/augment_pairs.py"


# Scoring jobs per encoder (of every family, {fam}): one for the evaluated splits, and one per split that something downstream
# trains or decides on (score_split_*): the training pairs (the next step's labels; not for the last
# bi-encoder) and the validation split (the teacher gate's input). Adding an evaluation set scores and
# evaluates it and retrains nothing.
rule score_pairs_bi:
    input:
        model=bi_model_input,
        pairs=expand(f"{RES}/data/pairs/{{split}}.parquet", split=SCORED_SPLITS),
    output:
        [parted(p, PAIR_PARTS) for p in expand(f"{RES}/iter{{{{k}}}}/bi{{{{fam}}}}/scores/{{split}}.parquet",
                                               split=SCORED_SPLITS)],
    log:
        part_log(f"{RES}/logs/score_pairs_bi/iter{{k}}{{fam}}.log", PAIR_PARTS),
    params:
        encoder="bi",
        model=lambda w: bi_model(w.k, w.fam),
        max_length=STS["max_length"],
        batch_size=config["encode"]["batch_size"],
        precision=config["encode"]["precision"],
        pooling=config["bi_encoder"]["pooling"],
        normalize=config["bi_encoder"]["normalize"],
        part=part_of,
        parts=PAIR_PARTS,
    threads: 4
    resources:
        gpu=0,  # CPU unless the profile's set-resources says otherwise
    benchmark:
        part_log(f"{RES}/benchmarks/score_pairs_bi/iter{{k}}{{fam}}.tsv", PAIR_PARTS)
    conda:
        CONDA_ENV
    script:
        "../workflow/scripts/score_pairs.py"


use rule score_pairs_bi as score_split_bi with:
    input:
        model=bi_model_input,
        pairs=[f"{RES}/data/pairs/{{one}}.parquet"],
    output:
        parted(f"{RES}/iter{{k}}/bi{{fam}}/scores/{{one}}.parquet", PAIR_PARTS),
    log:
        part_log(f"{RES}/logs/score_split_bi/iter{{k}}{{fam}}-{{one}}.log", PAIR_PARTS),
    benchmark:
        part_log(f"{RES}/benchmarks/score_split_bi/iter{{k}}{{fam}}-{{one}}.tsv", PAIR_PARTS)
    wildcard_constraints:
        one=one_of(SINGLE_SPLITS),


use rule score_pairs_bi as score_pairs_cross with:
    input:
        model=f"{RES}/iter{{k}}/cross{{fam}}/model",
        pairs=expand(f"{RES}/data/pairs/{{split}}.parquet", split=SCORED_SPLITS),
    output:
        [parted(p, PAIR_PARTS) for p in expand(f"{RES}/iter{{{{k}}}}/cross{{{{fam}}}}/scores/{{split}}.parquet",
                                               split=SCORED_SPLITS)],
    log:
        part_log(f"{RES}/logs/score_pairs_cross/iter{{k}}{{fam}}.log", PAIR_PARTS),
    params:
        encoder="cross",
        model=lambda w, input: input.model,
        max_length=CROSS["max_length"],
        batch_size=CROSS["score_batch_size"],
        precision=CROSS["precision"],
        pooling="auto",
        normalize="auto",
    benchmark:
        part_log(f"{RES}/benchmarks/score_pairs_cross/iter{{k}}{{fam}}.tsv", PAIR_PARTS)


use rule score_pairs_cross as score_split_cross with:
    input:
        model=f"{RES}/iter{{k}}/cross{{fam}}/model",
        pairs=[f"{RES}/data/pairs/{{one}}.parquet"],
    output:
        parted(f"{RES}/iter{{k}}/cross{{fam}}/scores/{{one}}.parquet", PAIR_PARTS),
    log:
        part_log(f"{RES}/logs/score_split_cross/iter{{k}}{{fam}}-{{one}}.log", PAIR_PARTS),
    benchmark:
        part_log(f"{RES}/benchmarks/score_split_cross/iter{{k}}{{fam}}-{{one}}.tsv", PAIR_PARTS)
    wildcard_constraints:
        one=one_of(SINGLE_SPLITS),


rule evaluate_sts:
    input:
        scores=expand(f"{RES}/iter{{{{k}}}}/{{{{encoder}}}}/scores/{{split}}.parquet", split=EVAL_SPLITS),
        pairs=expand(f"{RES}/data/pairs/{{split}}.parquet", split=EVAL_SPLITS),
    output:
        metrics=expand(f"{RES}/iter{{{{k}}}}/metrics/{{{{encoder}}}}-{{split}}.json", split=EVAL_SPLITS),
        values=expand(f"{RES}/iter{{{{k}}}}/metrics/{{{{encoder}}}}-{{split}}.values.parquet", split=EVAL_SPLITS),
    log:
        f"{RES}/logs/evaluate_sts/iter{{k}}-{{encoder}}.log",
    params:
        iteration=lambda w: int(w.k),
        encoder=lambda w: w.encoder,
        splits=EVAL_SPLITS,
    wildcard_constraints:
        encoder="bi|cross|bi_b|cross_b",
    conda:
        CONDA_ENV
    script:
        "../workflow/scripts/evaluate_sts.py"


# sts.supervised_baseline: a cross-encoder trained on the GOLD train scores (/ 5), for comparison only.
rule gold_labels:
    input:
        f"{RES}/data/pairs/{TRAIN_SPLIT}.parquet",
    output:
        pairs=f"{RES}/supervised/pairs.parquet",
        labels=f"{RES}/supervised/gold-labels.parquet",
    log:
        f"{RES}/logs/gold_labels.log",
    params:
        scale=5.0,
    conda:
        CONDA_ENV
    script:
        "../workflow/scripts/gold_labels.py"


use rule train_cross as train_cross_supervised with:
    input:
        pairs=rules.gold_labels.output.pairs,
        labels=[rules.gold_labels.output.labels],
    output:
        directory(f"{RES}/supervised/cross/model"),
    log:
        f"{RES}/logs/train_cross/supervised.log",
    params:
        recipe=recipe("cross"),
        hparams=lambda w: cross_hparams(SimpleNamespace(k="1")),  # fresh from cross_encoder.model
        checkpoints=lambda w, output: f"{output[0]}.checkpoints",
    benchmark:
        f"{RES}/benchmarks/train_cross/supervised.tsv"


use rule score_pairs_cross as score_pairs_supervised with:
    input:
        model=rules.train_cross_supervised.output[0],
        pairs=expand(f"{RES}/data/pairs/{{split}}.parquet", split=EVAL_SPLITS),
    output:
        [parted(p, PAIR_PARTS) for p in expand(f"{RES}/supervised/cross/scores/{{split}}.parquet", split=EVAL_SPLITS)],
    log:
        part_log(f"{RES}/logs/score_pairs_cross/supervised.log", PAIR_PARTS),
    benchmark:
        part_log(f"{RES}/benchmarks/score_pairs_cross/supervised.tsv", PAIR_PARTS)


use rule evaluate_sts as evaluate_supervised with:
    input:
        scores=expand(f"{RES}/supervised/cross/scores/{{split}}.parquet", split=EVAL_SPLITS),
        pairs=expand(f"{RES}/data/pairs/{{split}}.parquet", split=EVAL_SPLITS),
    output:
        metrics=expand(f"{RES}/supervised/metrics/cross-{{split}}.json", split=EVAL_SPLITS),
        values=expand(f"{RES}/supervised/metrics/cross-{{split}}.values.parquet", split=EVAL_SPLITS),
    log:
        f"{RES}/logs/evaluate_sts/supervised.log",
    params:
        iteration=0,
        encoder="cross-supervised",
        splits=EVAL_SPLITS,
