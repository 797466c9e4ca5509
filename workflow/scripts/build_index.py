from bicross.logs import rule_log
from bicross.pipeline import build_index

with rule_log(snakemake.log[0]):
    build_index(snakemake.input[0], snakemake.output[0], snakemake.params.settings, threads=snakemake.threads)
