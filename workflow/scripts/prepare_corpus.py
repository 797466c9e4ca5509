from bicross.logs import rule_log
from bicross.pipeline import prepare_corpus

with rule_log(snakemake.log[0]):
    prepare_corpus(dict(snakemake.params.dataset), snakemake.output[0])
