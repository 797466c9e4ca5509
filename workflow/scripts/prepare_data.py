from bicross.logs import rule_log
from bicross.pipeline import prepare_data

with rule_log(snakemake.log[0]):
    prepare_data(dict(snakemake.params.dataset), snakemake.params.outdir, snakemake.params.holdout)
