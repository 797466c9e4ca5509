from bicross.logs import rule_log
from bicross.pipeline import prepare_split

with rule_log(snakemake.log[0]):
    prepare_split(dict(snakemake.params.job), snakemake.wildcards.split, snakemake.input.corpus,
                  snakemake.output.queries, snakemake.output.qrels)
