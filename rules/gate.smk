rule gate_teacher:
    input:
        unpack(gate_inputs),  # validation scores of cross-encoder k and bi-encoder k-1
    output:
        f"{RES}/iter{{k}}/gate/{{student}}.json",
    log:
        f"{RES}/logs/gate_teacher/iter{{k}}-{{student}}.log",
    params:
        task=TASK,
        split=VAL_SPLIT,
        metric=VAL_METRIC,
        action=VALIDATION["losing_teacher"],
        student_model=lambda w: bi_model(prev(w), w.student[len("bi"):]),
        teacher_weights=TEACHER_WEIGHTS,  # sts with sts.mutual: each family's cross-encoder's share
    wildcard_constraints:
        student="bi|bi_b",
    conda:
        CONDA_ENV
    script:
        "../workflow/scripts/gate_teacher.py"
