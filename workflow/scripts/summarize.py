from bicross.logs import rule_log
from bicross.pipeline import summarize

with rule_log(snakemake.log[0]):
    summarize(list(snakemake.input.metrics), snakemake.output.metrics, snakemake.output.changes,
              resamples=snakemake.params.resamples, seed=snakemake.params.seed)
