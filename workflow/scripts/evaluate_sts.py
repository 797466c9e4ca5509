from bicross.logs import rule_log

p = snakemake.params
with rule_log(snakemake.log[0]):
    from bicross.sts.evaluate import evaluate_splits

    evaluate_splits(list(snakemake.input.scores), list(snakemake.input.pairs), list(snakemake.output.metrics), p.splits,
                    iteration=p.iteration, encoder=p.encoder, values_outs=list(snakemake.output.values))
