from bicross import report
from bicross.logs import rule_log

with rule_log(snakemake.log[0]):
    report.plot_losses(list(snakemake.input), dict(zip(snakemake.params.kinds, snakemake.output, strict=True)))
