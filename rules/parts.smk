# A stage run in parts (common.smk parted: retrieve.query_shards, cross_encoder.score_shards,
# sts.score_shards) is put back together here: its parts concatenated in order, one row group at a time.
rule merge_parts:
    input:
        merge_inputs,
    output:
        f"{RES}/{{merged}}.parquet",
    log:
        f"{RES}/logs/merge_parts/{{merged}}.log",
    wildcard_constraints:
        merged=merged_outputs(),
    conda:
        CONDA_ENV
    script:
        "../workflow/scripts/merge_parts.py"
