from bicross.logs import rule_log
from bicross.pipeline import tokenize_corpus

with rule_log(snakemake.log[0]):
    tokenize_corpus(snakemake.params.model, snakemake.input[0], snakemake.params.max_length, snakemake.output[0])
