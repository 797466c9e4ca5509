# sts.augment: the unlabelled training pairs plus new ones built from their sentences (no gold score read).
from bicross.gpus import job_gpus
from bicross.logs import rule_log

p = snakemake.params
with rule_log(snakemake.log[0]), job_gpus(snakemake):
    from bicross.sts.augment import augment_file

    augment_file(snakemake.input.pairs, snakemake.output[0], model=p.model, neighbours=p.neighbours, random=p.random,
                 seed=p.seed, max_length=p.max_length, batch_size=p.batch_size, precision=p.precision,
                 threads=snakemake.threads, pooling=p.pooling, normalize=p.normalize)
