from bicross.logs import rule_log
from bicross.pipeline import tokenize_queries

with rule_log(snakemake.log[0]):
    tokenize_queries(snakemake.params.model, snakemake.input[0], snakemake.params.max_length, snakemake.output[0],
                     snakemake.wildcards.split)
