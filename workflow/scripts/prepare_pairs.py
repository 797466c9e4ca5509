import os

from bicross.logs import rule_log

with rule_log(snakemake.log[0]):
    from bicross.data.sts import load_pair_set, write_pairs

    spec = snakemake.params.spec
    pairs = load_pair_set(spec, labelled=snakemake.params.labelled)
    write_pairs({spec["split"]: pairs}, os.path.dirname(snakemake.output[0]))
