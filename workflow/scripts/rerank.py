from bicross.logs import rule_log
from bicross.pipeline import rerank

p, i = snakemake.params, snakemake.input
with rule_log(snakemake.log[0]):
    rerank(i.model, i.run, i.queries, i.corpus, snakemake.output[0], depth=p.depth, max_length=p.max_length,
           batch_size=p.batch_size, precision=p.precision, threads=snakemake.threads)
