# accelerate launch from the rule (bicross.launch.launch_rule_job), unless the teacher gate skipped
# distillation: then bi-encoder k is a copy of bi-encoder k-1 (bicross.gate.keep_student).
from bicross.gate import SKIP, keep_student, read_record
from bicross.gpus import job_gpus
from bicross.launch import launch_rule_job
from bicross.logs import rule_log

i = snakemake.input
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
        launch_rule_job(snakemake, module, args, gpus)
