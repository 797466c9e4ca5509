# The job's GPUs (its `gpu` resource) are assigned before anything touches CUDA: see bicross.gpus.
from bicross.gpus import job_gpus
from bicross.logs import rule_log

p = snakemake.params
with rule_log(snakemake.log[0]), job_gpus(snakemake):
    from bicross.sts.score import score_pairs

    pairs = snakemake.input.pairs  # Snakemake gives a one-file list as a plain string
    score_pairs(p.encoder, p.model, [pairs] if isinstance(pairs, str) else list(pairs), list(snakemake.output),
                max_length=p.max_length, batch_size=p.batch_size, precision=p.precision, threads=snakemake.threads,
                pooling=p.pooling, normalize=p.normalize, part=p.part, parts=p.parts)
