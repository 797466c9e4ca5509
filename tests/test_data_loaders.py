"""BEIR and MS MARCO loaders on small files: the good path and every kind of bad input."""

from __future__ import annotations

import json
import logging

import pyarrow.parquet as pq
import pytest

from bicross.data import Dataset, load_dataset, write_dataset
from bicross.data.validate import queries_without_positive
from bicross.errors import ConfigError, InputError
from bicross.schemas import CORPUS, QRELS, QUERIES

DOCS = [
    {"_id": "d1", "title": "Alpha", "text": "first document"},
    {"_id": 2, "text": "second document, no title"},  # int id, missing title
    {"_id": "d3", "title": "Gamma", "text": ""},  # title only is fine
]
QUERIES_ = [
    {"_id": "q1", "text": "what is alpha"},
    {"_id": 7, "text": "second query"},
    {"_id": "q3", "text": "unused"},
]
QRELS_ = "q1\td1\t1\nq1\t2\t3\n7\td3\t2\n"


def jsonl(rows) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


@pytest.fixture
def beir(tmp_path):
    """A valid BEIR folder; tests overwrite one file to break it."""
    root = tmp_path / "beir"
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text(jsonl(DOCS))
    (root / "queries.jsonl").write_text(jsonl(QUERIES_))
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + QRELS_)
    return root


def beir_cfg(root, **kw) -> dict:
    return {"format": "beir", "path": str(root), "splits": ["test"], **kw}


def rows(table) -> list[tuple]:
    return sorted(zip(*table.to_pydict().values(), strict=True))


def test_beir_loads(beir, tmp_path):
    ds = load_dataset(beir_cfg(beir))
    assert isinstance(ds, Dataset)
    assert ds.corpus.schema == CORPUS
    assert ds.corpus.to_pydict() == {
        "docid": ["d1", "2", "d3"],
        "title": ["Alpha", "", "Gamma"],
        "text": ["first document", "second document, no title", ""],
    }
    # only the queries the split's qrels name (q3 has none)
    assert ds.queries["test"].to_pydict() == {"qid": ["q1", "7"], "text": ["what is alpha", "second query"]}
    assert rows(ds.qrels["test"]) == [("7", "d3", 2), ("q1", "2", 3), ("q1", "d1", 1)]  # graded kept

    write_dataset(ds, tmp_path / "out")
    assert pq.read_table(tmp_path / "out" / "corpus.parquet").equals(ds.corpus)
    assert pq.read_schema(tmp_path / "out" / "queries" / "test.parquet") == QUERIES
    back = pq.read_table(tmp_path / "out" / "qrels" / "test.parquet")
    assert back.schema == QRELS and back.equals(ds.qrels["test"])


def test_beir_headerless_qrels_same_as_header(beir):
    with_header = load_dataset(beir_cfg(beir))
    (beir / "qrels" / "test.tsv").write_text(QRELS_)
    without = load_dataset(beir_cfg(beir))
    assert without.qrels["test"].equals(with_header.qrels["test"])
    assert without.queries["test"].equals(with_header.queries["test"])


def test_beir_tolerates_blank_lines_and_crlf(beir):
    (beir / "corpus.jsonl").write_text(jsonl(DOCS).replace("\n", "\r\n") + "\n\n")
    assert load_dataset(beir_cfg(beir)).corpus.num_rows == 3


def test_query_with_only_zero_relevance_is_reported_and_kept(beir, caplog):
    (beir / "qrels" / "test.tsv").write_text(QRELS_ + "q3\td1\t0\nq3\t2\t0\n")
    with caplog.at_level(logging.WARNING, logger="bicross.data"):
        ds = load_dataset(beir_cfg(beir))
    assert "q3" in ds.queries["test"]["qid"].to_pylist()
    assert queries_without_positive(ds.qrels["test"]) == ["q3"]
    assert "1 queries have no positive qrels" in caplog.text and "q3" in caplog.text


# (file to overwrite, its new content, file named in the error, line, words in the message)
BEIR_BAD = {
    "malformed json": (
        "corpus.jsonl",
        jsonl(DOCS[:1]) + '{"_id": "x", "text": \n',
        "corpus.jsonl",
        2,
        "JSON",
    ),
    "json not an object": ("queries.jsonl", '["q1", "text"]\n', "queries.jsonl", 1, "JSON object"),
    "missing _id": ("corpus.jsonl", jsonl(DOCS[:2] + [{"text": "no id"}]), "corpus.jsonl", 3, "_id"),
    "missing text": ("queries.jsonl", jsonl([*QUERIES_, {"_id": "q9"}]), "queries.jsonl", 4, "text"),
    "text not a string": ("queries.jsonl", jsonl([{"_id": "q1", "text": 5}]), "queries.jsonl", 1, "text"),
    "duplicate docid": (
        "corpus.jsonl",
        jsonl([*DOCS, {"_id": "2", "text": "again"}]),
        "corpus.jsonl",
        4,
        "unique docid",
    ),
    "duplicate qid": (
        "queries.jsonl",
        jsonl([*QUERIES_, {"_id": "q1", "text": "x"}]),
        "queries.jsonl",
        4,
        "unique qid",
    ),
    "empty query": (
        "queries.jsonl",
        jsonl([QUERIES_[0], {"_id": 7, "text": "  "}]),
        "queries.jsonl",
        2,
        "non-empty query",
    ),
    "empty document": (
        "corpus.jsonl",
        jsonl([*DOCS, {"_id": "d4", "title": "", "text": " "}]),
        "corpus.jsonl",
        4,
        "non-empty title or text",
    ),
    "qrels 2 fields": ("qrels/test.tsv", "q1\td1\t1\nq1\td1\n", "test.tsv", 2, "3 tab-separated fields"),
    "qrels 4 fields": ("qrels/test.tsv", "q1\td1\t0\t1\n", "test.tsv", 1, "3 tab-separated fields"),
    "non-integer score": (
        "qrels/test.tsv",
        "query-id\tcorpus-id\tscore\nq1\td1\t1.5\n",
        "test.tsv",
        2,
        "integer relevance",
    ),
    "unknown qid": ("qrels/test.tsv", QRELS_ + "q404\td1\t1\n", "test.tsv", 4, "qid"),
    "unknown docid": ("qrels/test.tsv", "q1\td404\t1\n" + QRELS_, "test.tsv", 1, "docid"),
    "duplicate qrels pair": ("qrels/test.tsv", QRELS_ + "q1\td1\t2\n", "test.tsv", 4, "(qid, docid) pair"),
}


@pytest.mark.parametrize("case", BEIR_BAD, ids=list(BEIR_BAD))
def test_beir_bad_input(beir, case):
    name, content, file, line, words = BEIR_BAD[case]
    (beir / name).write_text(content)
    with pytest.raises(InputError) as err:
        load_dataset(beir_cfg(beir))
    msg = str(err.value)
    assert file in msg and f"line {line}" in msg and words in msg, msg
    assert err.value.line == line


@pytest.mark.parametrize(
    "extra, dropped_q, dropped_d",
    [("q404\td1\t1\n", 1, 0), ("q1\td404\t1\n", 0, 1), ("q404\td1\t1\nq1\td404\t1\nq1\td405\t0\n", 1, 2)],
)
def test_beir_unknown_ids_dropped_and_counted(beir, caplog, extra, dropped_q, dropped_d):
    (beir / "qrels" / "test.tsv").write_text(QRELS_ + extra)
    with caplog.at_level(logging.WARNING, logger="bicross.data"):
        ds = load_dataset(beir_cfg(beir, on_unknown_id="drop"))
    assert ds.qrels["test"].num_rows == 3
    n = dropped_q + dropped_d
    assert f"dropped {n} of {3 + n} qrels rows" in caplog.text
    assert f"unknown query ({dropped_q}) or document ({dropped_d})" in caplog.text


@pytest.mark.parametrize("missing", ["corpus.jsonl", "queries.jsonl", "qrels/test.tsv"])
def test_beir_missing_file(beir, missing):
    (beir / missing).unlink()
    with pytest.raises(InputError, match="no such file") as err:
        load_dataset(beir_cfg(beir))
    assert missing.split("/")[-1] in str(err.value) and err.value.line is None


@pytest.mark.parametrize(
    "empty, on_unknown_id",
    [("corpus.jsonl", "error"), ("qrels/test.tsv", "error"), ("qrels/test.tsv", "drop")],
)
def test_beir_empty_file(beir, empty, on_unknown_id):
    # drop mode: a qrels file whose every row is unknown leaves the split empty, which is an error too
    (beir / empty).write_text("q404\td1\t1\n" if on_unknown_id == "drop" else "")
    with pytest.raises(InputError, match="expected (at least one document|qrels for split test)") as err:
        load_dataset(beir_cfg(beir, on_unknown_id=on_unknown_id))
    assert empty.split("/")[-1] in str(err.value)


def test_beir_missing_split(beir):
    with pytest.raises(InputError, match=r"train\.tsv"):
        load_dataset(beir_cfg(beir, splits=["train"]))


def test_bad_config(beir):
    with pytest.raises(ConfigError, match="format"):
        load_dataset({"format": "csv", "path": str(beir)})
    with pytest.raises(ConfigError, match="on_unknown_id"):
        load_dataset(beir_cfg(beir, on_unknown_id="ignore"))
    with pytest.raises(ConfigError, match="splits"):
        load_dataset(beir_cfg(beir, splits=[]))


def test_not_utf8(beir):
    (beir / "queries.jsonl").write_bytes(b'{"_id": "q1", "text": "ok"}\n{"_id": "q2", "text": "\xff"}\n')
    with pytest.raises(InputError, match=r"queries\.jsonl, line 2: expected UTF-8"):
        load_dataset(beir_cfg(beir))


# ---- MS MARCO -------------------------------------------------------------------------------

COLLECTION = "0\tpassage zero\n1\tpassage one\n2\tpassage two\n"
TOPICS = "100\tfirst question\n200\t second question\n300\tno judgements\n"
TREC = "100 0 0 1\n100 0 1 0\n200 Q0 2 3\n200 Q0 1 0\n"


@pytest.fixture
def msmarco(tmp_path):
    root = tmp_path / "msm"
    root.mkdir()
    (root / "collection.tsv").write_text(COLLECTION)
    (root / "topics.txt").write_text(TOPICS)
    (root / "qrels.txt").write_text(TREC)
    return root


def msm_cfg(root, **kw) -> dict:
    cfg = {
        "format": "msmarco",
        "path": str(root),
        "splits": ["dev"],
        "collection": "collection.tsv",
        "queries": {"dev": "topics.txt"},
        "qrels": {"dev": "qrels.txt"},
    }
    return {**cfg, **kw}


def test_msmarco_loads(msmarco, caplog):
    with caplog.at_level(logging.INFO, logger="bicross.data"):
        ds = load_dataset(msm_cfg(msmarco))
    assert ds.corpus.to_pydict() == {
        "docid": ["0", "1", "2"],
        "title": [""] * 3,
        "text": ["passage zero", "passage one", "passage two"],
    }
    # topic 300 has no qrels: left out, and said so; the text is kept as written
    assert ds.queries["dev"].to_pydict() == {
        "qid": ["100", "200"],
        "text": ["first question", " second question"],
    }
    assert "1 of 3 queries" in caplog.text and "left out" in caplog.text
    # `0` and `Q0` forms both parse; graded and zero relevance kept
    assert rows(ds.qrels["dev"]) == [("100", "0", 1), ("100", "1", 0), ("200", "1", 0), ("200", "2", 3)]


def test_msmarco_query_with_only_zero_relevance(msmarco, caplog):
    (msmarco / "qrels.txt").write_text(TREC + "300 0 2 0\n")
    with caplog.at_level(logging.WARNING, logger="bicross.data"):
        ds = load_dataset(msm_cfg(msmarco))
    assert ds.queries["dev"].num_rows == 3
    assert queries_without_positive(ds.qrels["dev"]) == ["300"]
    assert "300" in caplog.text


MSM_BAD = {
    "collection 1 field": ("collection.tsv", COLLECTION + "3 no tab here\n", 4, "2 tab-separated fields"),
    "collection 3 fields": ("collection.tsv", "0\ta\tb\n", 1, "2 tab-separated fields"),
    "empty pid": ("collection.tsv", COLLECTION + "\tpassage\n", 4, "non-empty id"),
    "duplicate pid": ("collection.tsv", COLLECTION + "1\tagain\n", 4, "unique docid"),
    "empty passage": ("collection.tsv", "0\tpassage\n1\t \n", 2, "non-empty title or text"),
    "duplicate qid": ("topics.txt", TOPICS + "100\tagain\n", 4, "unique qid"),
    "empty query": ("topics.txt", "100\tok\n200\t\n", 2, "non-empty query"),
    "qrels 3 fields": ("qrels.txt", TREC + "200 Q0 2\n", 5, "4 whitespace-separated fields"),
    "non-integer relevance": ("qrels.txt", "100 0 0 high\n", 1, "integer relevance"),
    "unknown qid": ("qrels.txt", TREC + "999 0 0 1\n", 5, "qid"),
    "unknown docid": ("qrels.txt", "100 Q0 77 1\n" + TREC, 1, "docid"),
}


@pytest.mark.parametrize("case", MSM_BAD, ids=list(MSM_BAD))
def test_msmarco_bad_input(msmarco, case):
    name, content, line, words = MSM_BAD[case]
    (msmarco / name).write_text(content)
    with pytest.raises(InputError) as err:
        load_dataset(msm_cfg(msmarco))
    msg = str(err.value)
    assert name in msg and f"line {line}" in msg and words in msg, msg


def test_msmarco_unknown_ids_dropped(msmarco, caplog):
    (msmarco / "qrels.txt").write_text(TREC + "999 0 0 1\n100 0 77 2\n200 Q0 78 0\n")
    with caplog.at_level(logging.WARNING, logger="bicross.data"):
        ds = load_dataset(msm_cfg(msmarco, on_unknown_id="drop"))
    assert ds.qrels["dev"].num_rows == 4
    assert "split dev: dropped 3 of 7 qrels rows" in caplog.text


def test_msmarco_missing_file(msmarco):
    (msmarco / "topics.txt").unlink()
    with pytest.raises(InputError, match=r"topics\.txt: expected a file"):
        load_dataset(msm_cfg(msmarco))


def test_msmarco_config_names_every_split(msmarco):
    with pytest.raises(ConfigError, match="qrels"):
        load_dataset(msm_cfg(msmarco, qrels={}))
    with pytest.raises(ConfigError, match="collection"):
        load_dataset(msm_cfg(msmarco, collection=None))


# ---- headers and byte-order marks ---------------------------------------------------------------

@pytest.mark.parametrize("score", ["1.0", "2.5", "high"])
def test_beir_headerless_qrels_first_row_is_data_not_a_header(beir, score):
    """A first row is a header by its names, never because its score does not parse: a header-less file
    whose first score is not an integer stops on that row instead of losing it."""
    (beir / "qrels" / "test.tsv").write_text(f"q1\td1\t{score}\n" + QRELS_)
    with pytest.raises(InputError) as err:
        load_dataset(beir_cfg(beir))
    assert err.value.line == 1 and "test.tsv" in err.value.path
    assert "header" in err.value.expected and "integer relevance" in err.value.expected
    assert repr(score) in str(err.value)


@pytest.mark.parametrize("header", ["query-id\tcorpus-id\tscore", "query_id\tdoc_id\trelevance",
                                    "qid\tdocid\tlabel", "Query-ID\tCorpus-ID\tScore"])
def test_beir_qrels_header_by_its_names(beir, header):
    (beir / "qrels" / "test.tsv").write_text(header + "\n" + QRELS_)
    assert rows(load_dataset(beir_cfg(beir)).qrels["test"]) == [("7", "d3", 2), ("q1", "2", 3), ("q1", "d1", 1)]


def test_beir_qrels_header_only_on_the_first_row(beir):
    (beir / "qrels" / "test.tsv").write_text(QRELS_ + "query-id\tcorpus-id\tscore\n")
    with pytest.raises(InputError, match=r"test\.tsv, line 4: expected an integer relevance, got 'score'"):
        load_dataset(beir_cfg(beir))


BOM = "\ufeff"


@pytest.mark.parametrize(("name", "content"), [("corpus.jsonl", None), ("queries.jsonl", None),
                                             ("qrels/test.tsv", None), ("qrels/test.tsv", QRELS_)],
                         ids=["corpus", "queries", "qrels with header", "qrels without header"])
def test_beir_byte_order_mark_is_not_part_of_the_first_id(beir, name, content):
    path = beir / name
    if content is not None:
        path.write_text(content)
    expected = load_dataset(beir_cfg(beir))
    path.write_text(BOM + path.read_text(), encoding="utf-8")
    got = load_dataset(beir_cfg(beir))
    assert got.corpus.equals(expected.corpus)
    assert got.queries["test"].equals(expected.queries["test"])
    assert rows(got.qrels["test"]) == rows(expected.qrels["test"])


@pytest.mark.parametrize("name", ["collection.tsv", "topics.txt", "qrels.txt"])
def test_msmarco_byte_order_mark_is_not_part_of_the_first_id(msmarco, name):
    expected = load_dataset(msm_cfg(msmarco))
    path = msmarco / name
    path.write_text(BOM + path.read_text(), encoding="utf-8")
    got = load_dataset(msm_cfg(msmarco))
    assert got.corpus.equals(expected.corpus)
    assert got.queries["dev"].equals(expected.queries["dev"])
    assert rows(got.qrels["dev"]) == rows(expected.qrels["dev"])


def test_byte_order_mark_only_at_the_start(msmarco):
    """A BOM inside a file is no BOM: it stays in the id (and so shows in the error it causes)."""
    (msmarco / "qrels.txt").write_text(TREC + BOM + "100 0 2 1\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"qrels\.txt, line 5: .*unknown qid \ufeff100"):
        load_dataset(msm_cfg(msmarco))


# ---- the corpus and each split apart (the workflow's prepare_corpus and prepare_split) -------------

def _unreadable(path):
    """Make a file fail to parse, so a loader that reads it stops."""
    path.write_text("this is not what the file holds\n")


def test_beir_one_split_reads_no_corpus_and_no_other_split(beir):
    from bicross.data import (
        corpus_input_files,
        corpus_spec,
        load_corpus,
        load_split,
        split_input_files,
        split_spec,
    )

    (beir / "qrels" / "dev.tsv").write_text("q3\td1\t1\n")
    cfg = beir_cfg(beir, splits=["test", "dev"])
    whole = load_dataset(cfg)
    docids = whole.corpus["docid"]
    _unreadable(beir / "corpus.jsonl")
    _unreadable(beir / "qrels" / "dev.tsv")
    for given in (cfg, split_spec(cfg, "test")):  # the whole section or the split's spec
        queries, qrels = load_split(given, "test", docids)
        assert queries.equals(whole.queries["test"]) and qrels.equals(whole.qrels["test"])
    assert split_spec(cfg, "test") == {"format": "beir", "path": str(beir), "splits": ["test"], "on_unknown_id": "error"}
    assert split_input_files(cfg, "test") == [str(beir / "queries.jsonl"), str(beir / "qrels" / "test.tsv")]
    assert corpus_input_files(cfg) == [str(beir / "corpus.jsonl")]
    assert "splits" not in corpus_spec(cfg) and corpus_spec(cfg) == corpus_spec(beir_cfg(beir, splits=["x"]))
    with pytest.raises(InputError, match=r"corpus\.jsonl, line 1"):
        load_corpus(corpus_spec(cfg))


def test_one_split_is_checked_against_the_corpus_docids(beir):
    """prepare_split reads only the prepared corpus's docids: an unknown docid stops the split with the
    qrels file and line, as load_dataset does (or is dropped and counted)."""
    import pyarrow as pa

    from bicross.data import load_split

    docids = pa.array(["d1", "2"])  # d3 is not in this corpus
    with pytest.raises(InputError, match=r"test\.tsv, line 4: expected a docid that is in the corpus"):
        load_split(beir_cfg(beir), "test", docids)
    queries, qrels = load_split(beir_cfg(beir, on_unknown_id="drop"), "test", docids)
    assert rows(qrels) == [("q1", "2", 3), ("q1", "d1", 1)] and queries["qid"].to_pylist() == ["q1"]


def test_msmarco_one_split_reads_only_its_files(msmarco):
    from bicross.data import corpus_spec, load_corpus, load_split, split_input_files, split_spec

    (msmarco / "train-topics.txt").write_text("100\tfirst question\n")
    (msmarco / "train-qrels.txt").write_text("100 0 0 1\n")
    cfg = msm_cfg(msmarco, splits=["dev", "train"], queries={"dev": "topics.txt", "train": "train-topics.txt"},
                  qrels={"dev": "qrels.txt", "train": "train-qrels.txt"})
    whole = load_dataset(cfg)
    assert load_corpus(corpus_spec(cfg)).equals(whole.corpus)
    spec = split_spec(cfg, "train")
    assert spec["queries"] == {"train": "train-topics.txt"} and spec["qrels"] == {"train": "train-qrels.txt"}
    assert split_input_files(cfg, "train") == [str(msmarco / "train-topics.txt"), str(msmarco / "train-qrels.txt")]
    docids = whole.corpus["docid"]
    _unreadable(msmarco / "collection.tsv")
    _unreadable(msmarco / "qrels.txt")
    queries, qrels = load_split(spec, "train", docids)
    assert queries.equals(whole.queries["train"]) and qrels.equals(whole.qrels["train"])
    with pytest.raises(ConfigError, match=r"dataset\.queries must name a file for every split; missing \[.test.\]"):
        split_spec(cfg, "test")


def test_carving_is_the_same_in_every_job():
    """The train split's job and the held-out split's job each carve: the same queries, disjoint, all there."""
    import pyarrow as pa

    from bicross.data import carve
    from bicross.schemas import QRELS, QUERIES

    qids = [f"q{i}" for i in range(30)]
    queries = pa.table({"qid": qids, "text": qids}, schema=QUERIES)
    qrels = pa.table({"qid": qids, "docid": [f"d{i}" for i in range(30)], "relevance": [1] * 30}, schema=QRELS)
    (kq, kr), (hq, hr), count = carve(queries, qrels, "train", 4, seed=7)
    again = carve(queries, qrels, "train", 4, seed=7)
    assert count == 4 and hq.equals(again[1][0]) and kq.equals(again[0][0])
    assert set(hq["qid"].to_pylist()) == set(hr["qid"].to_pylist()) and hq.num_rows == 4
    assert set(kq["qid"].to_pylist()) | set(hq["qid"].to_pylist()) == set(qids) and kr.num_rows == 26


def test_split_job_holdout_comes_from_the_train_split(beir):
    from bicross.data import split_job, split_spec

    cfg = beir_cfg(beir, splits=["train", "test"])
    holdout = {"split": "train", "name": "holdout", "size": 50, "seed": 13}
    train, held, test = (split_job(cfg, s, holdout) for s in ("train", "holdout", "test"))
    assert train == held == {"dataset": split_spec(cfg, "train"), "holdout": holdout}
    assert test == {"dataset": split_spec(cfg, "test")}
    more = beir_cfg(beir, splits=["train", "test", "extra"])  # another split changes neither job
    assert split_job(more, "train", holdout) == train and split_job(more, "holdout", holdout) == held
    with pytest.raises(ConfigError, match="already has a split 'holdout'"):
        split_job(beir_cfg(beir, splits=["train", "holdout"]), "train", holdout)
