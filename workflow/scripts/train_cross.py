# accelerate launch from the rule: one process per GPU the job was given (bicross.gpus assigns the
# `gpu` resource's worth of device ids; none on a machine without GPUs), else `cpu_processes`.
from bicross.gpus import job_gpus
from bicross.launch import launch_rule_job
from bicross.logs import rule_log

i = snakemake.input
if snakemake.config["task"] == "sts":
    module, args = "bicross.sts.train", ["cross", "--pairs", i.pairs, "--labels", *i.labels]
else:
    module, args = "bicross.train_cross", ["--negatives", i.negatives, "--queries", i.queries, "--corpus", i.corpus]
with rule_log(snakemake.log[0]), job_gpus(snakemake) as gpus:
    launch_rule_job(snakemake, module, args, gpus)
