import os

from bicross.logs import rule_log

with rule_log(snakemake.log[0]):
    from bicross.data.sts import load_pair_set, write_pairs

    spec = snakemake.params.spec
    write_pairs({spec["split"]: load_pair_set(spec)}, os.path.dirname(snakemake.output[0]))
