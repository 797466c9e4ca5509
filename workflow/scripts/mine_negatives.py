from bicross.logs import rule_log
from bicross.pipeline import mine

p, i = snakemake.params, snakemake.input
with rule_log(snakemake.log[0]):
    mine(i.run, i.qrels, i.corpus, snakemake.output.negatives, iteration=int(snakemake.wildcards.k),
         denoise=p.get("denoise"), teacher=i.get("teacher"), record=snakemake.output.get("filter"),
         rank_start=p.rank_start, rank_end=p.rank_end, negatives_per_query=p.negatives_per_query, seed=p.seed)
