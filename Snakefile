# bicross: a bi-encoder and a cross-encoder teach each other.
# This file is a table of contents: the stages live in rules/, the logic in src/bicross/.
import os

from snakemake.utils import min_version

min_version("9.0")


report: "workflow/report/workflow.rst"


# The embedded default sits beside this file and applies when no --configfile is given: a config file
# names a whole experiment (the schema fills in what it leaves out), so the default's tuning never
# leaks into it. --config key=value layers on top of either.
if not workflow.overwrite_configfiles:

    configfile: os.path.join(workflow.basedir, "config", "config.yaml")


include: "rules/common.smk"


if TASK == "retrieval":

    include: "rules/data.smk"
    include: "rules/retrieve.smk"


include: "rules/cross.smk"
include: "rules/gate.smk"
include: "rules/distill.smk"


if TASK == "retrieval":

    include: "rules/evaluate.smk"

else:

    include: "rules/sts.smk"


include: "rules/parts.smk"


include: "rules/report.smk"


rule all:
    input:
        all_outputs(),
    default_target: True


onsuccess:
    release_checkpoints()
    print_summary()


onerror:
    forget_failed_jobs()
    release_checkpoints()
