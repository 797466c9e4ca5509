from bicross.best import write_best
from bicross.logs import rule_log

p = snakemake.params
with rule_log(snakemake.log[0]):
    write_best(snakemake.input.metrics, snakemake.output[0], split=p.split, metric=p.metric, models=p.models)
