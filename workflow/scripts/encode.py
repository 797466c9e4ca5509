# Corpus shards (wildcard s) and query splits share this script: only ids and row ranges differ.
# The job's GPUs (its `gpu` resource) are assigned before anything touches CUDA: see bicross.gpus.
from bicross.gpus import job_gpus
from bicross.logs import rule_log

p, w = snakemake.params, snakemake.wildcards
is_shard = hasattr(w, "s")
with rule_log(snakemake.log[0]), job_gpus(snakemake):
    from bicross.pipeline import encode

    encode(
        p.model,
        snakemake.input.tokens,
        snakemake.output[0],
        pooling=p.pooling,
        normalize=p.normalize,
        batch_size=p.batch_size,
        precision=p.precision,
        threads=snakemake.threads,
        shard=int(w.s) if is_shard else 0,
        shards=p.shards if is_shard else 1,
        id_column="docid" if is_shard else "qid",
    )
