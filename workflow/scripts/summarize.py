from bicross.logs import rule_log
from bicross.pipeline import summarize

with rule_log(snakemake.log[0]):
    summarize(list(snakemake.input), snakemake.output[0])
