from bicross.logs import rule_log

with rule_log(snakemake.log[0]):
    from bicross.data.sts import load_pairs, write_pairs

    write_pairs(load_pairs(dict(snakemake.params.dataset)), snakemake.params.outdir)
