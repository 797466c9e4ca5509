from bicross.logs import rule_log
from bicross.pipeline import tokenize

p = snakemake.params
with rule_log(snakemake.log[0]):
    tokenize(
        p.model,
        snakemake.input.corpus,
        dict(zip(p.splits, snakemake.input.queries, strict=True)),
        p.query_max_length,
        p.doc_max_length,
        snakemake.output.corpus,
        dict(zip(p.splits, snakemake.output.queries, strict=True)),
    )
