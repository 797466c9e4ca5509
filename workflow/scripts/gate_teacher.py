# The teacher gate of iteration k (bicross.gate): does cross-encoder k beat bi-encoder k-1 on validation?
from bicross.gate import decide, retrieval_scores, sts_scores, write_record
from bicross.logs import rule_log

i, p = snakemake.input, snakemake.params
with rule_log(snakemake.log[0]):
    if p.task == "sts":
        teacher, student = sts_scores(list(i.teacher), i.student, i.pairs, p.metric, p.teacher_weights)
    else:
        teacher, student = retrieval_scores(i.teacher[0], i.student, p.metric)
    record = decide(teacher, student, action=p.action, iteration=int(snakemake.wildcards.k),
                    student_name=snakemake.wildcards.student, split=p.split, metric=p.metric,
                    student_model=p.student_model, teachers=len(i.teacher), teacher_weights=p.teacher_weights)
    write_record(record, snakemake.output[0])
