import subprocess
import sys

import pyarrow as pa

from bicross.cli import main
from bicross.schemas import QRELS, RUN, write_table


def test_evaluate_and_export(tmp_path, capsys):
    run = pa.Table.from_pylist([{"qid": "q1", "docid": "d2", "rank": 1, "score": 2.0},
                                {"qid": "q1", "docid": "d1", "rank": 2, "score": 1.5}], schema=RUN)
    write_table(run, tmp_path / "run.parquet")
    write_table(pa.Table.from_pylist([{"qid": "q1", "docid": "d1", "relevance": 1}], schema=QRELS),
                tmp_path / "qrels.parquet")
    assert main(["evaluate", str(tmp_path / "run.parquet"), str(tmp_path / "qrels.parquet")]) == 0
    assert '"mrr@10": 0.5' in capsys.readouterr().out
    assert main(["export-trec", str(tmp_path / "run.parquet"), str(tmp_path / "run.trec")]) == 0
    assert (tmp_path / "run.trec").read_text().splitlines() == [
        "q1 Q0 d2 1 2.000000 bicross", "q1 Q0 d1 2 1.500000 bicross"]


def test_prepare_reports_bad_input_without_traceback(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "corpus.jsonl").write_text('{"_id": "1", "text": "x"}\nnot json\n')
    (tmp_path / "c.yaml").write_text(f"dataset:\n  format: beir\n  path: {tmp_path / 'd'}\n  splits: [test]\n")
    proc = subprocess.run([sys.executable, "-m", "bicross.cli", "prepare", str(tmp_path / "c.yaml"),
                           str(tmp_path / "out")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "corpus.jsonl, line 2" in proc.stderr and "Traceback" not in proc.stderr


def test_arguments_after_double_dash_are_for_probe_only(capsys):
    import pytest

    with pytest.raises(SystemExit) as err:
        main(["summary", "metrics.parquet", "--", "-n"])
    assert err.value.code == 2 and "for `bicross probe` only" in capsys.readouterr().err


def test_compare_two_evaluations(tmp_path, capsys):
    """`bicross compare`: the paired test of two values files of one split, e.g. two experiments' bi 2."""
    import numpy as np

    from bicross.evaluate import write_query_values
    from bicross.significance import mean_change

    qids = [f"q{i:02d}" for i in range(30)]
    a = np.random.default_rng(0).uniform(0, 1, 30)
    b = a - 0.1
    write_query_values(qids, {"mrr@10": a, "ndcg@10": a}, tmp_path / "a.values.parquet")
    write_query_values(qids, {"mrr@10": b, "ndcg@10": a}, tmp_path / "b.values.parquet")
    assert main(["compare", str(tmp_path / "a.values.parquet"), str(tmp_path / "b.values.parquet"),
                 "--resamples", "500"]) == 0
    expected = mean_change(a, b, 500, 42)
    assert capsys.readouterr().out.startswith(f"mrr@10: {expected.text()} over 30 queries (paired randomisation")
    main(["compare", str(tmp_path / "a.values.parquet"), str(tmp_path / "b.values.parquet"), "--metric", "ndcg@10"])
    assert capsys.readouterr().out.startswith("ndcg@10: +0.0000 [+0.000, +0.000] p=1.000")
