# accelerate launch from the rule: as many processes as the job's `gpu` resource (1 CPU process without).
import json

from bicross.launch import launch
from bicross.logs import rule_log

i, p, r = snakemake.input, snakemake.params, snakemake.resources
with rule_log(snakemake.log[0]):
    launch(
        "bicross.train_bi",
        ["--teacher", i.teacher, "--qrels", i.qrels, "--queries", i.queries, "--corpus", i.corpus,
         "--out", snakemake.output[0], "--checkpoints", p.checkpoints, "--hparams", json.dumps(p.hparams)],
        gpus=int(r.get("gpu", 0)),
        processes=int(r.get("cpu_processes", 1)),
        log_path=snakemake.log[0],
        threads=snakemake.threads,
    )
