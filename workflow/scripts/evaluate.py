from bicross.logs import rule_log
from bicross.pipeline import evaluate_run

w = snakemake.wildcards
with rule_log(snakemake.log[0]):
    evaluate_run(
        snakemake.input.run,
        snakemake.input.qrels,
        snakemake.output.metrics,
        iteration=int(w.k),
        encoder=snakemake.params.encoder,
        split=w.split,
        relevance_level=snakemake.params.relevance_level,
        values_out=snakemake.output.values,
    )
