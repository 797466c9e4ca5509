from bicross.logs import rule_log
from bicross.pipeline import retrieve

with rule_log(snakemake.log[0]):
    retrieve(
        snakemake.input.queries,
        list(snakemake.input.shards),
        snakemake.params.depth,
        snakemake.output[0],
        threads=snakemake.threads,
        indexes=list(snakemake.input.get("indexes", [])),  # none for exact (flat) search
        search=snakemake.params.search,
        part=snakemake.params.part,
        parts=snakemake.params.parts,
    )
