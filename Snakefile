# bicross: a bi-encoder and a cross-encoder teach each other.
# This file is a table of contents: the stages live in rules/, the logic in src/bicross/.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/retrieve.smk"
include: "rules/evaluate.smk"


rule all:
    input:
        all_outputs(),
    default_target: True


onsuccess:
    print_summary()
