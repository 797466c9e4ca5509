# The job's GPUs (its `gpu` resource) are assigned before anything touches CUDA: see bicross.gpus.
from bicross.gpus import job_gpus
from bicross.logs import rule_log

p, i = snakemake.params, snakemake.input
with rule_log(snakemake.log[0]), job_gpus(snakemake):
    from bicross.pipeline import rerank

    rerank(i.model, i.run, i.queries, i.corpus, snakemake.output[0], depth=p.depth, max_length=p.max_length,
           batch_size=p.batch_size, precision=p.precision, threads=snakemake.threads,
           part=p.part, parts=p.parts)
