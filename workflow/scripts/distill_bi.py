# accelerate launch from the rule (unless the teacher gate skipped distillation: then a copy of bi-encoder
# k-1): one process per GPU the job was given (bicross.gpus assigns the
# `gpu` resource's worth of device ids; none on a machine without GPUs), else `cpu_processes`.
import json

from bicross.gate import SKIP, keep_student, read_record
from bicross.gpus import job_gpus
from bicross.launch import launch
from bicross.logs import rule_log

i, p, r = snakemake.input, snakemake.params, snakemake.resources
if snakemake.config["task"] == "sts":
    module, args = "bicross.sts.train", ["bi", "--pairs", i.pairs, "--labels", *i.labels]
else:
    module, args = "bicross.train_bi", ["--teacher", i.teacher, "--qrels", i.qrels, "--queries", i.queries,
                                          "--corpus", i.corpus]
gate = read_record(i.gate) if "gate" in i.keys() else None
with rule_log(snakemake.log[0]), job_gpus(snakemake) as gpus:
    if gate is not None and gate["decision"] == SKIP:  # the teacher lost on validation: keep the student
        keep_student(gate, snakemake.output[0])
    else:
        launch(
            module,
            [*args, "--out", snakemake.output[0], "--checkpoints", p.checkpoints, "--hparams", json.dumps(p.hparams)],
            gpus=len(gpus),
            processes=int(r.get("cpu_processes", 1)),
            log_path=snakemake.log[0],
            threads=snakemake.threads,
        )
