"""The teacher gate's decisions on hand-made validation scores, and the copy that a skip makes."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bicross.gate import (
    DISTIL,
    SKIP,
    TeacherGateError,
    decide,
    keep_student,
    retrieval_scores,
    sts_scores,
    write_record,
)

ARGS = {"iteration": 2, "split": "holdout", "metric": "ndcg@10", "student_model": "results/x/iter1/bi/model"}


def test_a_winning_teacher_is_distilled_in_every_mode():
    for action in ("skip", "stop", "warn"):
        record = decide(0.61, 0.55, action=action, **ARGS)
        assert record["passed"] and record["decision"] == DISTIL
        assert record["message"] == ("teacher gate, iteration 2: cross-encoder 2 0.6100 vs bi-encoder 1 0.5500 "
                                     "(ndcg@10 on holdout): distilled")


def test_a_tie_passes():
    assert decide(0.5, 0.5, action="stop", **ARGS)["passed"]


def test_a_losing_teacher_skips_stops_or_warns():
    skipped = decide(0.20, 0.55, action="skip", **ARGS)
    assert not skipped["passed"] and skipped["decision"] == SKIP
    assert "0.2000 vs bi-encoder 1 0.5500" in skipped["message"] and "not distilled" in skipped["message"]
    with pytest.raises(TeacherGateError, match=r"cross-encoder 2 0\.2000 vs bi-encoder 1 0\.5500.*the run stops"):
        decide(0.20, 0.55, action="stop", **ARGS)
    warned = decide(0.20, 0.55, action="warn", **ARGS)
    assert not warned["passed"] and warned["decision"] == DISTIL and "distilled anyway" in warned["message"]
    with pytest.raises(ValueError):
        decide(0.2, 0.5, action="ignore", **ARGS)


def test_mutual_teachers_are_named_as_their_mean():
    record = decide(80.0, 82.0, action="skip", **{**ARGS, "metric": "spearman"}, student_name="bi_b", teachers=2)
    assert "the cross-encoders 2 (mean) 80.0000 vs bi-encoder_b 1 82.0000 (spearman" in record["message"]
    record = decide(80.0, 82.0, action="skip", **{**ARGS, "metric": "spearman"}, student_name="bi_b", teachers=2,
                    teacher_weights=[0.25, 0.75])
    assert "the cross-encoders 2 (weighted mean 0.25/0.75) 80.0000" in record["message"]
    assert record["teacher_weights"] == [0.25, 0.75]


def _metrics(path, value):
    path.write_text(json.dumps({"iteration": 1, "encoder": "x", "split": "holdout",
                                "metrics": {"ndcg@10": value, "mrr@10": 0.9}}))
    return str(path)


def test_retrieval_scores_read_the_metric_files(tmp_path):
    teacher, student = _metrics(tmp_path / "c.json", 0.4), _metrics(tmp_path / "b.json", 0.7)
    assert retrieval_scores(teacher, student, "ndcg@10") == (0.4, 0.7)
    with pytest.raises(Exception, match="no metric 'map'"):
        retrieval_scores(teacher, student, "map")


def test_sts_scores_average_the_teachers(tmp_path):
    ids = ["p1", "p2", "p3", "p4"]
    pq.write_table(pa.table({"pair_id": ids, "text_a": ["a"] * 4, "text_b": ["b"] * 4,
                             "gold": pa.array([1.0, 2.0, 3.0, 4.0], pa.float32())}), tmp_path / "dev.parquet")

    def scores(name, values):
        pq.write_table(pa.table({"pair_id": ids[::-1], "score": pa.array(values[::-1], pa.float32())}),
                       tmp_path / name)
        return str(tmp_path / name)

    # teacher a ranks p1..p4 as 1, 3, 2, 4; teacher b as 4, 3, 2, 1 but small: their mean ranks like gold
    a, b = scores("a.parquet", [0.0, 0.5, 0.4, 1.0]), scores("b.parquet", [0.03, 0.02, 0.01, 0.0])
    student = scores("s.parquet", [0.4, 0.3, 0.2, 0.1])
    teacher, bi = sts_scores([a, b], student, str(tmp_path / "dev.parquet"), "spearman")
    assert teacher == pytest.approx(80.0) and bi == pytest.approx(-100.0)
    # weighted as the bi-encoders' labels are (sts.mutual.cross_weights): b alone ranks against gold
    teacher, _ = sts_scores([a, b], student, str(tmp_path / "dev.parquet"), "spearman", [0.0, 1.0])
    assert teacher == pytest.approx(-100.0)


def test_keep_student_copies_the_model_with_the_reason(tmp_path):
    source = tmp_path / "iter1" / "bi" / "model"
    source.mkdir(parents=True)
    (source / "config.json").write_text("{}")
    (source / "training.json").write_text('{"steps": 3}')
    record = decide(0.1, 0.5, action="skip", **{**ARGS, "student_model": str(source)})
    out = tmp_path / "iter2" / "bi" / "model"
    out.parent.mkdir(parents=True)
    write_record(record, tmp_path / "gate.json")
    keep_student(record, out)
    assert (out / "config.json").read_text() == "{}"
    info = json.loads((out / "training.json").read_text())
    assert info["skipped"] and info["gate"]["decision"] == SKIP and info["copied_from"] == str(source)
    assert sorted(p.name for p in out.parent.iterdir()) == ["model"]  # no temporary left behind
