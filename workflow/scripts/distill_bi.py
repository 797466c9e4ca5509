# accelerate launch from the rule: one process per GPU the job was given (bicross.gpus assigns the
# `gpu` resource's worth of device ids; none on a machine without GPUs), else `cpu_processes`.
import json

from bicross.gpus import job_gpus
from bicross.launch import launch
from bicross.logs import rule_log

i, p, r = snakemake.input, snakemake.params, snakemake.resources
if snakemake.config["task"] == "sts":
    module, args = "bicross.sts.train", ["bi", "--pairs", i.pairs, "--labels", *i.labels]
else:
    module, args = "bicross.train_bi", ["--teacher", i.teacher, "--qrels", i.qrels, "--queries", i.queries,
                                          "--corpus", i.corpus]
with rule_log(snakemake.log[0]), job_gpus(snakemake) as gpus:
    launch(
        module,
        [*args, "--out", snakemake.output[0], "--checkpoints", p.checkpoints, "--hparams", json.dumps(p.hparams)],
        gpus=len(gpus),
        processes=int(r.get("cpu_processes", 1)),
        log_path=snakemake.log[0],
        threads=snakemake.threads,
    )
