"""The end-of-run table: one row per split/encoder/iteration, and what each row changed."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from bicross.summary import best_iterations, format_table, print_summary, starting_point, write_metrics


def metric_files(tmp_path, rows):
    paths = []
    for i, (encoder, iteration, split, metrics) in enumerate(rows):
        path = tmp_path / f"{i}.json"
        path.write_text(json.dumps({"encoder": encoder, "iteration": iteration, "split": split, "metrics": metrics}))
        paths.append(str(path))
    return paths


def test_each_row_shows_its_change_against_where_it_started(tmp_path):
    rows = [("bi", 0, "test", {"ndcg@10": 0.50, "map": 0.40, "num_queries": 10}),
            ("bi", 1, "test", {"ndcg@10": 0.55, "map": 0.42, "num_queries": 10}),
            ("cross", 1, "test", {"ndcg@10": 0.45, "map": 0.30, "num_queries": 10}),
            ("bi", 2, "test", {"ndcg@10": 0.60, "map": 0.45, "num_queries": 10}),
            ("cross", 2, "test", {"ndcg@10": 0.58, "map": 0.44, "num_queries": 10})]
    table = write_metrics(metric_files(tmp_path, rows), tmp_path / "metrics.parquet")
    lines = format_table(table).splitlines()
    assert lines[0].split() == ["split", "encoder", "iter", "ndcg@10", "map", "change", "in", "ndcg@10"]
    assert [line.split()[1:3] for line in lines[1:]] == [["bi", "0"], ["bi", "1"], ["cross", "1"],
                                                        ["bi", "2"], ["cross", "2"]]
    assert lines[1].split()[3:] == ["0.5000", "0.4000"]  # bi-encoder 0 starts the table: nothing to compare
    assert lines[2].split()[5:] == ["+0.0500", "vs", "bi", "0"]
    assert lines[3].split()[5:] == ["-0.0500", "vs", "bi", "0"]  # cross 1 reranks bi 0's candidates
    assert lines[5].split()[5:] == ["+0.0300", "vs", "bi", "1"]
    assert "num_queries" not in lines[0]
    assert pq.read_table(tmp_path / "metrics.parquet").num_rows == 15


def test_sts_families_baselines_and_the_best_iteration(tmp_path, capsys):
    rows = [("bi", 0, "dev", {"spearman": 80.0, "pearson": 79.0}),
            ("bi_b", 0, "dev", {"spearman": 70.0, "pearson": 69.0}),
            ("cross-supervised", 0, "dev", {"spearman": 88.0, "pearson": 87.0}),
            ("bi", 1, "dev", {"spearman": 81.0, "pearson": 80.0}),
            ("bi_b", 1, "dev", {"spearman": 72.5, "pearson": 71.0}),
            ("cross", 1, "dev", {"spearman": 82.0, "pearson": 81.0}),
            ("bi", 2, "dev", {"spearman": 80.5, "pearson": 80.0})]
    write_metrics(metric_files(tmp_path, rows), tmp_path / "m.parquet")
    text = print_summary(tmp_path / "m.parquet", select_split="dev", transductive=True)
    assert capsys.readouterr().out.startswith("\nbicross metrics\n")
    table = {tuple(line.split()[1:3]): line.split()[3:] for line in text.splitlines()[1:] if line.startswith("dev")}
    assert table[("bi_b", "1")][2:] == ["+2.5000", "vs", "bi_b", "0"]  # a family compares with itself
    assert table[("cross", "1")][2:] == ["+2.0000", "vs", "bi", "0"]
    assert table[("cross-supervised", "0")] == ["88.0000", "87.0000"]  # a baseline: no starting point
    assert "best bi on dev: iteration 1 (81.00)" in text and "best bi_b on dev: iteration 1 (72.50)" in text
    assert "TRANSDUCTIVE" in text
    assert best_iterations(pq.read_table(tmp_path / "m.parquet"), "dev", "pearson")["bi"] == (1, 80.0)
    assert starting_point("cross-supervised", 0) is None and starting_point("bi", 0) is None


def test_loop_checks_name_what_did_not_learn_and_each_gate(tmp_path):
    import json

    from bicross.summary import check_lines, loop_checks

    def training(path, **learning):
        path.mkdir(parents=True)
        (path / "training.json").write_text(json.dumps({"steps": 50, "learning": learning}))

    training(tmp_path / "iter1" / "cross" / "model", verdict="did not learn", first=2.08, last=2.07,
             uniform=2.0794, steps=50)
    training(tmp_path / "iter1" / "bi" / "model", verdict="learned", first=3.0, last=1.0, uniform=5.0, steps=40)
    (tmp_path / "iter1" / "gate").mkdir()
    (tmp_path / "iter1" / "gate" / "bi.json").write_text(json.dumps(
        {"student": "bi", "passed": False, "message": "teacher gate, iteration 1: ... not distilled"}))
    rows = loop_checks(tmp_path)
    assert [(r["check"], r["encoder"], r["passed"]) for r in rows] == [
        ("training", "cross", False), ("training", "bi", True), ("teacher gate", "bi", False)]
    assert check_lines(tmp_path) == [
        "cross-encoder 1 did not learn: loss 2.08 -> 2.07 over 50 steps (a uniform guess: 2.08)",
        "teacher gate, iteration 1: ... not distilled"]
    (tmp_path / "iter1" / "gate" / "bi.json").unlink()
    assert check_lines(tmp_path)[-1].startswith("teacher gate: off (no validation split)")


def test_every_change_gets_a_paired_test(tmp_path, capsys):
    """bi k vs bi k-1, cross k vs the bi-encoder it reranks, bi 2 / cross 2 also vs bi 0, from the
    per-query values each evaluation wrote; the printed table shows interval and p."""
    import numpy as np

    from bicross.evaluate import means, values_path, write_query_values
    from bicross.pipeline import summarize
    from bicross.significance import mean_change
    from bicross.summary import changes_file, comparisons

    rng = np.random.default_rng(0)
    qids = [f"q{i:02d}" for i in range(40)]  # sorted, the order the test pairs them in
    base = rng.uniform(0, 1, 40)
    gains = {("bi", 0): 0.0, ("bi", 1): 0.1, ("cross", 1): 0.3, ("bi", 2): 0.12, ("cross", 2): 0.2}
    per_query, paths = {}, []
    for (encoder, k), gain in gains.items():
        values = {"mrr@10": np.clip(base + gain + rng.normal(0, 0.05, 40), 0, 1)}
        per_query[(encoder, k)] = values["mrr@10"]
        path = tmp_path / f"iter{k}-{encoder}-test.json"
        path.write_text(json.dumps({"encoder": encoder, "iteration": k, "split": "test",
                                    "metrics": means(qids, values)}))
        write_query_values(qids, values, values_path(path))
        paths.append(str(path))
    assert comparisons({("test", e, k) for e, k in gains}) == [
        (("test", "bi", 1), ("test", "bi", 0)), (("test", "bi", 2), ("test", "bi", 1)),
        (("test", "bi", 2), ("test", "bi", 0)), (("test", "cross", 1), ("test", "bi", 0)),
        (("test", "cross", 2), ("test", "bi", 1)), (("test", "cross", 2), ("test", "bi", 0))]
    summarize(paths, str(tmp_path / "metrics.parquet"), str(changes_file(tmp_path / "metrics.parquet")),
              resamples=2000, seed=4)
    changes = {(r["encoder"], r["iteration"], r["base_encoder"], r["base_iteration"]): r
               for r in pq.read_table(changes_file(tmp_path / "metrics.parquet")).to_pylist()}
    expected = mean_change(per_query[("cross", 2)], per_query[("bi", 1)], 2000, 4)
    got = changes[("cross", 2, "bi", 1)]
    assert (got["difference"], got["low"], got["high"], got["p"]) == pytest.approx(
        (expected.difference, expected.low, expected.high, expected.p))
    assert changes[("bi", 1, "bi", 0)]["p"] < 0.01 and changes[("bi", 1, "bi", 0)]["low"] > 0
    text = print_summary(tmp_path / "metrics.parquet")
    assert capsys.readouterr().out.endswith(text + "\n")
    lines = {tuple(line.split()[1:3]): line for line in text.splitlines() if line.startswith("test")}
    assert f"{expected.text()} vs bi 1" in lines[("cross", "2")]
    bi2_vs_bi0 = mean_change(per_query[("bi", 2)], per_query[("bi", 0)], 2000, 4)
    assert lines[("bi", "2")].endswith(f"vs bi 1  {bi2_vs_bi0.text()} vs bi 0")
    assert "vs bi-encoder 0" in text.splitlines()[0]
    assert "paired randomisation test (sign flip, two-sided)" in text.splitlines()[-1]
    assert print_summary(tmp_path / "metrics.parquet") == text  # seeded: the same numbers again


def test_sts_changes_are_a_bootstrap_over_pairs(tmp_path):
    import numpy as np
    import pyarrow as pa

    from bicross.evaluate import values_path
    from bicross.schemas import PAIR_VALUES, write_table
    from bicross.significance import SPEARMAN_BOOTSTRAP
    from bicross.summary import paired_changes, values_files

    rng = np.random.default_rng(2)
    gold = rng.integers(0, 6, 80).astype(float)
    paths = []
    for encoder, k, noise in (("bi", 0, 2.0), ("cross", 1, 0.5), ("cross-supervised", 0, 0.1)):
        path = tmp_path / f"{encoder}{k}.json"
        path.write_text(json.dumps({"encoder": encoder, "iteration": k, "split": "test",
                                    "metrics": {"spearman": 1.0, "num_pairs": 80}}))
        write_table(pa.table({"pair_id": [f"p{i}" for i in range(80)], "score": gold + rng.normal(0, noise, 80),
                              "gold": gold}), values_path(path), PAIR_VALUES)
        paths.append(str(path))
    table = write_metrics(paths, tmp_path / "m.parquet")
    rows = paired_changes(table, values_files(paths), resamples=500, seed=1).to_pylist()
    assert [(r["encoder"], r["base_encoder"], r["test"]) for r in rows] == [
        ("cross", "bi", SPEARMAN_BOOTSTRAP), ("cross-supervised", "bi", SPEARMAN_BOOTSTRAP)]
    assert all(r["low"] > 0 and r["p"] < 0.05 and r["n"] == 80 for r in rows)
    assert "vs bi-encoder 0" in format_table(table, paired_changes(table, values_files(paths), 500, 1))
