from bicross.logs import rule_log
from bicross.parts import merge_parts

with rule_log(snakemake.log[0]):
    merge_parts(list(snakemake.input), snakemake.output[0])
