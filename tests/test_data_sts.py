"""Sentence-pair loaders (task: sts): STS Benchmark and score/sentence TSVs, their checks, the gold firewall."""

from __future__ import annotations

import shutil

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from conftest import shared_data as need

from bicross.data.sts import (
    SPLIT_KEY,
    UNLABELLED,
    labelled,
    load_pair_set,
    load_pairs,
    pair_files,
    pair_set_spec,
    pair_splits,
    training_pairs,
    unlabelled,
    write_pairs,
)
from bicross.errors import ConfigError, InputError
from bicross.schemas import PAIRS, write_table

LICENCE = "\tsource: example.org/a\tsource: example.org/b"
STSB_TRAIN = (
    "main-captions\tMSRvid\t2012test\t0001\t5.000\tA plane is taking off.\tAn air plane is taking off.\n"
    "main-forums\tanswer-answer\t2016\t0002\t3\tShe said \"yes\".\t\"Unbalanced quote" + LICENCE + "\n"
    "\n"  # blank: skipped, still counted
    "main-news\theadlines\t2014\t0003\t0.250\tA cat sits.\tA dog runs.\r\n"
)
STSB_TEST = "main-captions\tMSRvid\t2012test\t0004\t1.5\tTwo men talk.\tA cat sits.\n"
PAIRS_TSV = "4.2\tA cat sits.\tA cat is sitting.\n\tNo label here.\tNone at all.\n 0 \t'single'\t\"double\"\n"


@pytest.fixture
def stsb(tmp_path):
    root = tmp_path / "stsb"
    root.mkdir()
    (root / "sts-train.csv").write_text(STSB_TRAIN)
    (root / "sts-test.csv").write_text(STSB_TEST)
    return root


@pytest.fixture
def tsv(tmp_path):
    root = tmp_path / "semeval"
    root.mkdir()
    (root / "a.test.tsv").write_text(PAIRS_TSV)
    (root / "b.test.tsv").write_text("5\tA plane is taking off.\tAn air plane is taking off.\n")
    (root / "a.train.tsv").write_text("1\tOne.\tTwo.\n")
    return root


def stsb_cfg(root, **kw) -> dict:
    return {"format": "stsb", "path": str(root), "splits": ["train", "test"], **kw}


def tsv_cfg(root, **kw) -> dict:
    return {"format": "pairs_tsv", "path": str(root), "splits": ["test"], "files": {"test": ["*.test.tsv"]}, **kw}


def parquet_bytes(table, path) -> bytes:
    write_table(table, path, UNLABELLED)
    return path.read_bytes()


# --- good path -----------------------------------------------------------------------------------------

def test_stsb_licence_rows_quotes_and_blank_lines(stsb):
    tables = load_pairs(stsb_cfg(stsb))
    assert list(tables) == ["train", "test"]
    train = tables["train"]
    assert train.schema == PAIRS and train.schema.metadata[SPLIT_KEY] == b"train"
    assert train.to_pydict() == {
        "pair_id": ["sts-train.csv:1", "sts-train.csv:2", "sts-train.csv:4"],  # line 3 is blank
        "text_a": ["A plane is taking off.", 'She said "yes".', "A cat sits."],
        "text_b": ["An air plane is taking off.", '"Unbalanced quote', "A dog runs."],  # licence fields dropped
        "gold": [5.0, 3.0, 0.25],
    }
    assert tables["test"].to_pydict()["pair_id"] == ["sts-test.csv:1"]


def test_stsb_files_override_default_names(stsb):
    (stsb / "extra-dev.csv").write_text(STSB_TEST)
    tables = load_pairs(stsb_cfg(stsb, splits=["dev"], files={"dev": ["extra-*.csv"]}))
    assert tables["dev"]["pair_id"].to_pylist() == ["extra-dev.csv:1"]


def test_pairs_tsv_empty_score_is_unlabelled(tsv):
    test = load_pairs(tsv_cfg(tsv))["test"]
    assert test.schema == PAIRS
    assert test.to_pydict() == {
        "pair_id": ["a.test.tsv:1", "a.test.tsv:2", "a.test.tsv:3", "b.test.tsv:1"],  # sorted files
        "text_a": ["A cat sits.", "No label here.", "'single'", "A plane is taking off."],
        "text_b": ["A cat is sitting.", "None at all.", '"double"', "An air plane is taking off."],
        "gold": [pytest.approx(4.2), None, 0.0, 5.0],
    }
    assert test["gold"].null_count == 1
    assert labelled(test)["pair_id"].to_pylist() == ["a.test.tsv:1", "a.test.tsv:3", "b.test.tsv:1"]


def test_eval_sets_splits_and_files(stsb, tsv):
    cfg = stsb_cfg(stsb, eval_sets={
        "semeval": {"format": "pairs_tsv", "path": str(tsv), "files": ["*.test.tsv", "a.*", "b.test.tsv"]},
        "more": {"format": "stsb", "path": str(stsb), "files": ["sts-test.csv"]},
    })
    assert pair_splits(cfg) == ["train", "test", "semeval", "more"]
    # globs expanded, deduplicated (a.test.tsv, b.test.tsv and sts-test.csv match twice), sorted
    assert pair_files(cfg) == sorted(
        str(p) for p in (stsb / "sts-train.csv", stsb / "sts-test.csv",
                         tsv / "a.test.tsv", tsv / "a.train.tsv", tsv / "b.test.tsv")
    )
    tables = load_pairs(cfg)
    assert list(tables) == ["train", "test", "semeval", "more"]
    assert tables["semeval"]["pair_id"].to_pylist() == [
        "a.test.tsv:1", "a.test.tsv:2", "a.test.tsv:3", "a.train.tsv:1", "b.test.tsv:1"
    ]
    assert tables["more"].equals(tables["test"])


def test_pair_ids_of_files_in_subfolders(tmp_path):
    for year in ("2013", "2014"):
        (tmp_path / year).mkdir()
        (tmp_path / year / "OnWN.test.tsv").write_text("1\ta\tb\n")
    test = load_pairs(tsv_cfg(tmp_path, files={"test": ["*/OnWN.test.tsv"]}))["test"]
    assert test["pair_id"].to_pylist() == ["2013/OnWN.test.tsv:1", "2014/OnWN.test.tsv:1"]


def test_write_pairs_round_trip(stsb, tmp_path):
    tables = load_pairs(stsb_cfg(stsb))
    write_pairs(tables, tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["test.parquet", "train.parquet"]
    for split, table in tables.items():
        back = pq.read_table(tmp_path / "out" / f"{split}.parquet")
        assert back.schema == PAIRS and back.equals(table)
        assert back.schema.metadata[SPLIT_KEY] == split.encode()


# --- the gold-label firewall ---------------------------------------------------------------------------

def test_unlabelled_has_no_gold(stsb):
    table = load_pairs(stsb_cfg(stsb))["train"]
    free = unlabelled(table)
    assert free.column_names == ["pair_id", "text_a", "text_b"] and "gold" not in free.schema.names
    assert free.schema == UNLABELLED
    assert free["pair_id"].equals(table["pair_id"])


def test_training_pairs_dedup_prefix_and_order(stsb, tsv, tmp_path):
    cfg = stsb_cfg(stsb, eval_sets={"semeval": {"format": "pairs_tsv", "path": str(tsv), "files": ["*.tsv"]}})
    tables = load_pairs(cfg)
    got = training_pairs([tables["train"], tables["test"], tables["semeval"]])
    assert got.schema == UNLABELLED
    assert got["pair_id"].to_pylist() == [
        "train:sts-train.csv:1", "train:sts-train.csv:2", "train:sts-train.csv:4",
        "test:sts-test.csv:1",
        # a.test.tsv:1 repeats no pair ("A cat sits." is paired differently); b.test.tsv:1 repeats train:1
        "semeval:a.test.tsv:1", "semeval:a.test.tsv:2", "semeval:a.test.tsv:3", "semeval:a.train.tsv:1",
    ]
    # the same with a mapping, with explicit names, with unlabelled tables, and from Parquet files
    assert training_pairs({s: tables[s] for s in ("train", "test", "semeval")}).equals(got)
    assert training_pairs([unlabelled(t) for t in tables.values()], ["train", "test", "semeval"]).equals(got)
    write_pairs(tables, tmp_path / "out")
    back = [pq.read_table(tmp_path / "out" / f"{s}.parquet") for s in ("train", "test", "semeval")]
    assert training_pairs(back).equals(got)
    assert parquet_bytes(training_pairs(back), tmp_path / "a.parquet") == parquet_bytes(got, tmp_path / "b.parquet")


def test_training_pairs_needs_split_names(stsb):
    table = load_pairs(stsb_cfg(stsb))["train"].cast(PAIRS)  # metadata gone
    with pytest.raises(ValueError, match="records no split"):
        training_pairs([table])
    assert training_pairs([table], ["x"])["pair_id"][0].as_py() == "x:sts-train.csv:1"
    with pytest.raises(ValueError, match="pair ids repeat"):
        training_pairs([pa.table({"pair_id": ["1"], "text_a": ["a"], "text_b": ["b"]}),
                        pa.table({"pair_id": ["1"], "text_a": ["c"], "text_b": ["d"]})], ["s", "s"])
    assert training_pairs([]).num_rows == 0


def relabel_stsb(src, dst) -> None:
    """Copy an STS Benchmark file with every score changed (5 - score), everything else byte for byte."""
    out = []
    for line in src.read_bytes().split(b"\n"):
        fields = line.split(b"\t")
        if len(fields) >= 7:
            fields[4] = f"{5 - float(fields[4]):.3f}".encode()
        out.append(b"\t".join(fields))
    dst.write_bytes(b"\n".join(out))


def assert_firewall(root, relabelled, tmp_path, splits):
    cfg = {"format": "stsb", "path": str(root), "splits": splits}
    before, after = load_pairs(cfg), load_pairs({**cfg, "path": str(relabelled)})
    assert before["train"]["pair_id"].equals(after["train"]["pair_id"])  # ids do not depend on scores
    assert before["train"]["gold"].to_pylist() != after["train"]["gold"].to_pylist()
    a = parquet_bytes(training_pairs([before[s] for s in splits]), tmp_path / "before.parquet")
    b = parquet_bytes(training_pairs([after[s] for s in splits]), tmp_path / "after.parquet")
    assert a == b


def test_firewall_relabelled_train_gives_identical_training_pairs(stsb, tmp_path):
    relabelled = tmp_path / "relabelled"
    shutil.copytree(stsb, relabelled)
    relabel_stsb(stsb / "sts-train.csv", relabelled / "sts-train.csv")
    assert_firewall(stsb, relabelled, tmp_path, ["train", "test"])


# --- bad input: every error names the file and the line ------------------------------------------------

STSB_ROW = "g\tf\t2012\t0001\t{score}\t{a}\t{b}"


@pytest.mark.parametrize(
    ("line2", "expected", "got"),
    [
        ("g\tf\t2012\t0002\t3.0\tonly six fields", "7 tab-separated fields", "6 fields"),
        (STSB_ROW.format(score="3", a="x", b="y") + "\tone licence field", "or 9 with", "8 fields"),
        (STSB_ROW.format(score="high", a="x", b="y"), "a numeric score (field 5)", "'high'"),
        (STSB_ROW.format(score="", a="x", b="y"), "a numeric score (field 5)", "''"),
        (STSB_ROW.format(score="nan", a="x", b="y"), "a numeric score (field 5)", "'nan'"),
        (STSB_ROW.format(score="5.5", a="x", b="y"), "a score between 0 and 5", "5.5"),
        (STSB_ROW.format(score="-0.1", a="x", b="y"), "a score between 0 and 5", "-0.1"),
        (STSB_ROW.format(score="2", a="  ", b="y"), "a non-empty sentence1 and sentence2", "an empty sentence1"),
        (STSB_ROW.format(score="2", a="x", b=""), "a non-empty sentence1 and sentence2", "an empty sentence2"),
    ],
)
def test_stsb_bad_line(tmp_path, line2, expected, got):
    (tmp_path / "sts-train.csv").write_text(STSB_ROW.format(score="1", a="x", b="y") + "\n\n" + line2 + "\n")
    with pytest.raises(InputError) as err:
        load_pairs(stsb_cfg(tmp_path, splits=["train"]))
    e = err.value
    assert (e.path, e.line) == (str(tmp_path / "sts-train.csv"), 3)
    assert expected in e.expected and got in e.got
    assert str(e).startswith(f"{tmp_path / 'sts-train.csv'}, line 3: expected ")


@pytest.mark.parametrize(
    ("line2", "expected", "got"),
    [
        ("3\tonly two fields", "3 tab-separated fields", "2 fields"),
        ("3\ta\tb\tc", "3 tab-separated fields", "4 fields"),
        ("three\ta\tb", "a numeric score", "'three'"),
        ("inf\ta\tb", "a numeric score", "'inf'"),
        ("1_0\ta\tb", "a numeric score", "'1_0'"),
        ("\t\tb", "a non-empty sentence1 and sentence2", "an empty sentence1"),
        ("2\ta\t ", "a non-empty sentence1 and sentence2", "an empty sentence2"),
    ],
)
def test_pairs_tsv_bad_line(tmp_path, line2, expected, got):
    (tmp_path / "x.test.tsv").write_text("1\tok\tfine\n" + line2 + "\n")
    with pytest.raises(InputError) as err:
        load_pairs(tsv_cfg(tmp_path))
    e = err.value
    assert (e.path, e.line) == (str(tmp_path / "x.test.tsv"), 2)
    assert expected in e.expected and got in e.got


def test_invalid_utf8_names_file_and_line(tmp_path):
    (tmp_path / "x.test.tsv").write_bytes(b"1\tok\tfine\n2\tbad \xff byte\tb\n")
    with pytest.raises(InputError, match=r"x\.test\.tsv, line 2: expected UTF-8 text"):
        load_pairs(tsv_cfg(tmp_path))


def test_missing_files_and_globs(stsb, tsv, tmp_path):
    with pytest.raises(InputError, match=r"sts-dev\.csv: expected the stsb file\(s\) of split dev, got no such file"):
        load_pairs(stsb_cfg(stsb, splits=["dev"]))
    with pytest.raises(InputError, match=r"\*\.dev\.tsv: expected .* got no file matches this glob"):
        pair_files(tsv_cfg(tsv, files={"test": ["*.test.tsv", "*.dev.tsv"]}))
    with pytest.raises(InputError, match="eval set x, got no such file"):
        load_pairs(stsb_cfg(stsb, eval_sets={"x": {"format": "pairs_tsv", "path": str(tsv), "files": ["c.tsv"]}}))
    with pytest.raises(InputError, match="no such folder"):
        load_pairs(stsb_cfg(tmp_path / "absent"))
    (tsv / "empty.tsv").write_text("\n\n")
    with pytest.raises(InputError, match="at least one sentence pair"):
        load_pairs(tsv_cfg(tsv, files={"test": ["empty.tsv"]}))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format": "beir"}, "dataset.format must be one of stsb, pairs_tsv"),
        ({"format": "pairs_tsv", "files": {}}, r"dataset\.files\.train must list the files"),
        ({"files": {"train": ["sts-train.csv"], "dev": ["x"]}}, r"not in dataset\.splits .*\['dev'\]"),
        ({"files": {"train": []}}, r"dataset\.files\.train must be a non-empty list"),
        ({"splits": ["train", "train"]}, "repeated: .'train'."),
        ({"eval_sets": {"test": {"format": "stsb", "files": ["x"]}}}, "repeated: .'test'."),
        ({"eval_sets": {"../up": {"format": "stsb", "files": ["x"]}}}, "a split name must match"),
        ({"eval_sets": {"x": {"format": "csv", "files": ["x"]}}}, r"dataset\.eval_sets\.x\.format"),
        ({"eval_sets": {"x": {"format": "stsb"}}}, r"dataset\.eval_sets\.x\.files must be"),
    ],
)
def test_config_errors(stsb, change, message):
    with pytest.raises(ConfigError, match=message):
        pair_splits(stsb_cfg(stsb, **change))


def test_one_split_at_a_time(stsb, tsv):
    """The workflow prepares each split alone: its spec and files do not move when an eval set is added,
    and loading it alone gives the same table as loading them all."""
    cfg = stsb_cfg(stsb)
    more = stsb_cfg(stsb, eval_sets={"extra": {"format": "pairs_tsv", "path": str(tsv), "files": ["*.test.tsv"]}})
    assert pair_set_spec(more, "train") == pair_set_spec(cfg, "train")
    assert pair_files(more, "train") == pair_files(cfg, "train") == [str(stsb / "sts-train.csv")]
    assert pair_files(more, "extra") == [str(tsv / "a.test.tsv"), str(tsv / "b.test.tsv")]
    every = load_pairs(more)
    for split in ("train", "test", "extra"):
        alone = load_pair_set(pair_set_spec(more, split))
        assert alone.equals(every[split]) and alone.schema.metadata == {SPLIT_KEY: split.encode()}
    with pytest.raises(ConfigError, match=r"no split or eval set named 'dev'.*\['train', 'test', 'extra'\]"):
        pair_set_spec(more, "dev")


# --- the real data beside the project (../shared/data) -------------------------------------------------

def test_stsbenchmark_real():
    cfg = {"format": "stsb", "path": str(need("stsbenchmark")), "splits": ["train", "dev", "test"]}
    tables = load_pairs(cfg)
    assert {s: t.num_rows for s, t in tables.items()} == {"train": 5749, "dev": 1500, "test": 1379}
    for table in tables.values():
        gold = table["gold"]
        assert gold.null_count == 0
        assert 0.0 <= pc.min(gold).as_py() and pc.max(gold).as_py() <= 5.0
        assert not pc.any(pc.match_substring(table["text_b"], "\t")).as_py()
        assert pc.count_distinct(table["pair_id"]).as_py() == table.num_rows


# labelled / unlabelled pairs per year: labelled counts from the data README, unlabelled counted in the files
SEMEVAL = {
    "sts12": ("2012", ["*.test.tsv"], 2358, 0),
    "sts12train": ("2012", ["*.train.tsv"], 1484, 0),
    "sts13": ("2013", ["*.tsv"], 1500, 0),
    "sts14": ("2014", ["*.tsv"], 3750, 0),
    "sts15": ("2015", ["*.test.tsv"], 3000, 5500),
    "sts16": ("2016", ["*.test.tsv"], 1186, 7997),
}


def test_sts12_16_real():
    root = need("sts12-16")
    sets = {name: {"format": "pairs_tsv", "path": str(root / year), "files": files}
            for name, (year, files, _, _) in SEMEVAL.items()}
    cfg = {"format": "stsb", "path": str(need("stsbenchmark")), "splits": ["test"], "eval_sets": sets}
    assert pair_splits(cfg) == ["test", *SEMEVAL]
    assert len(pair_files(cfg)) == 1 + 25
    tables = load_pairs(cfg)
    for name, (_, _, n_labelled, n_unlabelled) in SEMEVAL.items():
        table = tables[name]
        assert (table.num_rows - table["gold"].null_count, table["gold"].null_count) == (n_labelled, n_unlabelled)
        kept = labelled(table)
        assert kept.num_rows == n_labelled and kept["gold"].null_count == 0
        assert 0.0 <= pc.min(kept["gold"]).as_py() and pc.max(kept["gold"]).as_py() <= 5.0
        assert pc.count_distinct(table["pair_id"]).as_py() == table.num_rows


def test_firewall_real_stsbenchmark(tmp_path):
    root = need("stsbenchmark")
    relabelled = tmp_path / "relabelled"  # a scratch copy outside the repository
    relabelled.mkdir()
    for name in ("sts-dev.csv", "sts-test.csv"):
        shutil.copy(root / name, relabelled / name)
    relabel_stsb(root / "sts-train.csv", relabelled / "sts-train.csv")
    assert_firewall(root, relabelled, tmp_path, ["train", "dev", "test"])


@pytest.mark.parametrize("fmt", ["stsb", "pairs_tsv"])
def test_byte_order_mark_is_not_part_of_the_first_score(stsb, tsv, fmt):
    root, cfg = (stsb, stsb_cfg(stsb)) if fmt == "stsb" else (tsv, tsv_cfg(tsv))
    expected = load_pairs(cfg)
    first = root / ("sts-train.csv" if fmt == "stsb" else "a.test.tsv")
    first.write_text("\ufeff" + first.read_text(), encoding="utf-8")
    got = load_pairs(cfg)
    assert all(got[s].equals(expected[s]) for s in expected)


def test_an_evaluated_split_without_labels_is_refused(tsv):
    """`labelled`: the workflow evaluates the split, so it must hold gold scores; a training-only split may
    be all unlabelled."""
    (tsv / "u.dev.tsv").write_text("\tone\ttwo\n\tthree\tfour\n")
    spec = pair_set_spec(tsv_cfg(tsv, splits=["dev"], files={"dev": ["u.dev.tsv"]}), "dev")
    assert load_pair_set(spec)["gold"].null_count == 2  # training-only: fine
    with pytest.raises(InputError) as err:
        load_pair_set(spec, labelled=True)
    assert err.value.path == str(tsv / "u.dev.tsv") and "split dev" in err.value.expected
    assert "no pair has a score" in str(err.value)
    (tsv / "u.dev.tsv").write_text("3\tone\ttwo\n\tthree\tfour\n")  # one gold score: no correlation either
    with pytest.raises(InputError, match="at least 2 labelled pairs"):
        load_pair_set(spec, labelled=True)
    (tsv / "u.dev.tsv").write_text("3\tone\ttwo\n1\tthree\tfour\n\tfive\tsix\n")
    assert load_pair_set(spec, labelled=True).num_rows == 3
