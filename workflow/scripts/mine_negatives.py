from bicross.logs import rule_log
from bicross.mining import mine_negatives

p, i = snakemake.params, snakemake.input
with rule_log(snakemake.log[0]):
    mine_negatives(i.run, i.qrels, i.corpus, snakemake.output[0], rank_start=p.rank_start,
                   rank_end=p.rank_end, negatives_per_query=p.negatives_per_query, seed=p.seed)
