# The supervised baseline's labels: the train split's gold scores scaled to [0, 1] (never used by the loop).
from bicross.logs import rule_log

with rule_log(snakemake.log[0]):
    from bicross.sts.labels import gold_labels

    gold_labels(snakemake.input[0], snakemake.output.pairs, snakemake.output.labels, snakemake.params.scale)
