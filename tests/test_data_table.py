"""The `table` input format on files the tests write: CSV, TSV, JSONL and Parquet with named columns,
for retrieval (corpus, queries, qrels) and sentence pairs; quoting, header variants, the MTEB / HF
Parquet layout with no map, and every kind of bad input named by file and line (Parquet: row)."""

from __future__ import annotations

import codecs
import csv
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bicross.data import input_files, load_dataset
from bicross.data.sts import load_pair_set, load_pairs, pair_files, pair_set_spec
from bicross.errors import ConfigError, InputError

# texts with every character a format has to quote: the delimiters, quotes and a newline
DOCS = [
    {"docid": "d1", "title": "Alpha, \"the first\"", "text": "one\ttab, one comma"},
    {"docid": "d2", "title": "", "text": "two lines:\nthe second \"quoted\" one"},
    {"docid": "d3", "title": "Gamma", "text": "'single' and \"double\"\"\" quotes"},
]
QUERIES = [{"qid": "q1", "text": "what is alpha, really?"}, {"qid": "q2", "text": "tab\there"}]
QRELS = {"train": [("q1", "d1", 1)], "test": [("q2", "d2", 2), ("q2", "d3", 0)]}


def write(path, fmt: str, header: list[str], rows: list[list]) -> None:
    """rows under the header in one format: csv / tsv via the csv module (minimal quoting), jsonl, parquet."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt in ("csv", "tsv"):
        with open(path, "w", newline="") as f:
            csv.writer(f, delimiter="," if fmt == "csv" else "\t").writerows([header, *rows])
    elif fmt == "jsonl":
        path.write_text("".join(json.dumps(dict(zip(header, r, strict=True))) + "\n" for r in rows))
    else:
        pq.write_table(pa.table({h: [r[i] for r in rows] for i, h in enumerate(header)}), path)


def retrieval(root, fmt: str, names: dict[str, list[str]] | None = None) -> dict:
    """The DOCS / QUERIES / QRELS dataset as `fmt` files under root, its columns named by `names` (per kind,
    in the project's order), with an extra column before the others; returns the dataset config."""
    names = names or {"corpus": ["docid", "title", "text"], "queries": ["qid", "text"],
                      "qrels": ["qid", "docid", "relevance"]}
    write(root / f"corpus.{fmt}", fmt, ["extra", *names["corpus"]],
          [["x", d["docid"], d["title"], d["text"]] for d in DOCS])
    write(root / f"queries.{fmt}", fmt, ["extra", *names["queries"]], [["x", q["qid"], q["text"]] for q in QUERIES])
    for split, rows in QRELS.items():
        write(root / "qrels" / f"{split}.{fmt}", fmt, ["extra", *names["qrels"]], [["x", *r] for r in rows])
    return {"format": "table", "path": str(root), "splits": ["train", "test"], "corpus": f"corpus.{fmt}",
            "queries": f"queries.{fmt}", "qrels": f"qrels/{{split}}.{fmt}"}


def assert_dataset(ds) -> None:
    assert ds.corpus.to_pylist() == DOCS
    assert ds.queries["train"].to_pylist() == QUERIES[:1] and ds.queries["test"].to_pylist() == QUERIES[1:]
    for split, rows in QRELS.items():
        assert [tuple(r.values()) for r in ds.qrels[split].to_pylist()] == rows


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl", "parquet"])
def test_every_format_with_the_projects_names(tmp_path, fmt):
    """Quoted delimiters, quotes and newlines come back as they were written; other columns are ignored."""
    cfg = retrieval(tmp_path, fmt)
    assert_dataset(load_dataset(cfg))
    assert input_files(cfg) == sorted(str(tmp_path / f) for f in
                                      (f"corpus.{fmt}", f"queries.{fmt}", f"qrels/train.{fmt}", f"qrels/test.{fmt}"))


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl", "parquet"])
def test_every_format_with_a_columns_map(tmp_path, fmt):
    names = {"corpus": ["doc_id", "heading", "body"], "queries": ["query_id", "question"],
             "qrels": ["q", "doc", "grade"]}
    cfg = retrieval(tmp_path, fmt, names)
    cfg["columns"] = {kind: dict(zip(cols, project, strict=True)) for (kind, cols), project in
                      zip(names.items(), (["docid", "title", "text"], ["qid", "text"], ["qid", "docid", "relevance"]),
                          strict=True)}
    assert_dataset(load_dataset(cfg))


def test_mteb_parquet_layout_needs_no_map(tmp_path):
    """corpus/ and queries/ shards with `_id`, qrels/<split>-*.parquet with `query-id, corpus-id, score`
    (int64), as the MTEB / Hugging Face datasets write them; integer ids become strings, a null title ""."""
    root = tmp_path / "mteb"
    (root / "corpus").mkdir(parents=True)
    pq.write_table(pa.table({"_id": ["d1", "d2"], "title": ["Alpha, \"the first\"", None],
                             "text": [DOCS[0]["text"], DOCS[1]["text"]]}), root / "corpus" / "corpus-00000-of-00002.parquet")
    pq.write_table(pa.table({"_id": ["d3"], "title": ["Gamma"], "text": [DOCS[2]["text"]]}),
                   root / "corpus" / "corpus-00001-of-00002.parquet")
    write(root / "queries" / "queries-00000-of-00001.parquet", "parquet", ["_id", "text"],
          [[q["qid"], q["text"]] for q in QUERIES])
    for split, rows in QRELS.items():
        write(root / "qrels" / f"{split}-00000-of-00001.parquet", "parquet", ["query-id", "corpus-id", "score"],
              [list(r) for r in rows])
    cfg = {"format": "table", "path": str(root), "splits": ["train", "test"]}
    ds = load_dataset(cfg)
    assert_dataset(ds)
    assert len(input_files(cfg)) == 5

    pq.write_table(pa.table({"_id": [3], "title": ["Gamma"], "text": ["x"]}),
                   root / "corpus" / "corpus-00001-of-00002.parquet")
    write(root / "qrels" / "test-00000-of-00001.parquet", "parquet", ["query-id", "corpus-id", "score"],
          [["q2", "3", 1]])
    assert load_dataset(cfg).corpus["docid"].to_pylist() == ["d1", "d2", "3"]


def test_header_variants(tmp_path):
    """A byte-order mark, \\r\\n line ends, spaces around names, names in another case and order, blank lines."""
    root = tmp_path / "t"
    root.mkdir()
    (root / "corpus.csv").write_bytes(codecs.BOM_UTF8 + b' Text ,DocID, title\r\n"a, b",d1,T\r\n\r\nc,d2,\r\n')
    (root / "queries.tsv").write_text("QID\tTEXT\nq1\tquery\n")
    (root / "qrels.jsonl").write_text('{"query-id": "q1", "corpus-id": "d2", "score": 1}\n')
    ds = load_dataset({"format": "table", "path": str(root), "splits": ["test"], "corpus": "corpus.csv",
                       "queries": "queries.tsv", "qrels": "qrels.jsonl"})
    assert ds.corpus.to_pylist() == [{"docid": "d1", "title": "T", "text": "a, b"},
                                     {"docid": "d2", "title": "", "text": "c"}]
    assert ds.queries["test"].to_pylist() == [{"qid": "q1", "text": "query"}]


def test_files_per_split_globs_and_mappings(tmp_path):
    cfg = retrieval(tmp_path, "csv")
    write(tmp_path / "q" / "train.csv", "csv", ["qid", "text"], [["q1", QUERIES[0]["text"]]])
    write(tmp_path / "q" / "test.csv", "csv", ["qid", "text"], [["q2", QUERIES[1]["text"]]])
    assert_dataset(load_dataset({**cfg, "queries": "q/{split}.csv"}))
    assert_dataset(load_dataset({**cfg, "queries": {"train": "q/train.csv", "test": ["q/test.csv"]},
                                 "qrels": {"train": "qrels/train.csv", "test": "qrels/test.csv"}}))
    with pytest.raises(ConfigError, match="dataset.qrels maps splits to files but names none for split 'test'"):
        load_dataset({**cfg, "qrels": {"train": "qrels/train.csv"}})
    with pytest.raises(InputError, match=r"nothing\*\.csv: expected the corpus file\(s\).*no file matches"):
        load_dataset({**cfg, "corpus": "nothing*.csv"})


def test_one_split_reads_only_its_own_files(tmp_path):
    """prepare_split: a split's spec names only its query and qrels globs and columns; another split's
    files (or the corpus) may be unreadable. prepare_corpus: the corpus's, whatever the splits."""
    from bicross.data import (
        corpus_input_files,
        corpus_spec,
        load_corpus,
        load_split,
        split_input_files,
        split_spec,
    )

    cfg = retrieval(tmp_path, "csv")
    write(tmp_path / "q" / "train.csv", "csv", ["qid", "text"], [["q1", QUERIES[0]["text"]]])
    write(tmp_path / "q" / "test.csv", "csv", ["qid", "text"], [["q2", QUERIES[1]["text"]]])
    cfg = {**cfg, "queries": {"train": "q/train.csv", "test": "q/test.csv"}}
    whole = load_dataset(cfg)
    spec = split_spec(cfg, "test")
    assert spec["queries"] == ["q/test.csv"] and spec["qrels"] == ["qrels/test.csv"]
    assert set(spec["columns"]) == {"queries", "qrels"}
    assert split_input_files(cfg, "test") == [str(tmp_path / "q" / "test.csv"), str(tmp_path / "qrels" / "test.csv")]
    assert corpus_input_files(cfg) == [str(tmp_path / "corpus.csv")]
    assert corpus_spec(cfg) == corpus_spec({**cfg, "splits": ["test"], "qrels": "other/{split}.csv"})
    assert load_corpus(corpus_spec(cfg)).equals(whole.corpus)
    docids = whole.corpus["docid"]
    for path in ("corpus.csv", "q/train.csv", "qrels/train.csv"):
        (tmp_path / path).write_text("nothing,like,the,header\n1,2\n")
    queries, qrels = load_split(spec, "test", docids)
    assert queries.equals(whole.queries["test"]) and qrels.equals(whole.qrels["test"])


def test_line_numbers_count_quoted_newlines(tmp_path):
    """A record after a quoted field spanning 3 lines is reported at its own first line."""
    cfg = retrieval(tmp_path, "csv")
    (tmp_path / "qrels" / "test.csv").write_text('qid,docid,relevance,note\nq2,d2,2,"a\nlong\nnote"\nq2,d3,high,x\n')
    with pytest.raises(InputError, match=r"test\.csv, line 5: expected an integer 'relevance' \(relevance\), got 'high'"):
        load_dataset(cfg)


@pytest.mark.parametrize(
    ("fmt", "content", "message"),
    [
        ("csv", 'docid,text\nd1,"unterminated\n', r"line 2: expected a well-formed record"),
        ("csv", 'docid,text\nd1,"closed" then text\n', r"line 2: expected a well-formed record"),
        ("csv", "docid,text\nd1,a,b\n", r"line 2: expected 2 fields, one per column of the header"),
        ("csv", "docid,text\n ,empty id\n", r"line 2: expected a non-empty 'docid' \(docid\), got ' '"),
        ("csv", "docid,text,text\nd1,a,b\n", r"line 1: expected column names that appear once in the header, got 'text' 2 times"),
        ("csv", "", r"corpus\.csv: expected a header row naming the columns"),
        ("tsv", "docid\ttext\nd1\tok\nd1\tagain\n", r"line 3: expected a unique docid, got d1 again \(first on line 2\)"),
        ("jsonl", '{"docid": "d1", "text": 3}\n', r"line 1: expected a string in 'text' \(text\), got 3"),
        ("jsonl", '{"docid": true, "text": "a"}\n', r"line 1: expected a non-empty string or an integer in 'docid'"),
        ("jsonl", '{"docid": "d1", "text": "a"}\n{"docid": "d2"}\n', r"line 2: expected a key 'text' \(text\), got keys \['docid'\]"),
        ("jsonl", '{"docid": "d1", "text": "a"\n', r"line 1: expected a JSON object, got malformed JSON"),
    ],
)
def test_bad_corpus_rows_name_file_and_line(tmp_path, fmt, content, message):
    cfg = retrieval(tmp_path, "csv")
    (tmp_path / f"corpus.{fmt}").write_bytes(content.encode())
    with pytest.raises(InputError, match=message):
        load_dataset({**cfg, "corpus": f"corpus.{fmt}"})


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl", "parquet"])
def test_a_missing_column_is_named_with_the_files_columns(tmp_path, fmt):
    cfg = retrieval(tmp_path, fmt, {"corpus": ["id", "title", "body"], "queries": ["qid", "text"],
                                    "qrels": ["qid", "docid", "relevance"]})
    what, where = ("key", r", line 1") if fmt == "jsonl" else ("column", ", line 1" if fmt != "parquet" else "")
    with pytest.raises(InputError, match=rf"corpus\.{fmt}{where}: expected a {what} named 'docid' or '_id' for docid "
                                         rf"\(or a columns map naming yours\), got {what}s \['extra', 'id', 'title', 'body'\]"):
        load_dataset(cfg)
    cfg["columns"] = {"corpus": {"id": "docid", "text_body": "text"}}
    with pytest.raises(InputError, match=rf"expected a {what} 'text_body' \(the columns map names it for text\)"):
        load_dataset(cfg)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"docid": ["d1"], "text": [7]}, r"corpus\.parquet: expected a column 'text' \(text\) of strings, got type int64"),
        ({"docid": [1.5], "text": ["a"]}, r"expected a column 'docid' \(docid\) of strings or integers, got type double"),
        ({"docid": ["d1"], "text": [["a", "list"]]}, r"of strings, got type list<"),
        ({"docid": ["d1", None], "text": ["a", "b"]}, r"corpus\.parquet, row 1 \(from 0\): expected a value in column 'docid'"),
        ({"docid": ["d1", "  "], "text": ["a", "b"]}, r"row 1 \(from 0\): expected a non-empty 'docid' \(docid\)"),
        ({"docid": ["d1", "d2", "d1"], "text": ["a", "b", "c"]}, r"row 2 \(from 0\): expected a unique docid, got d1 again \(first on row 0"),
        ({"docid": ["d1", "d2"], "text": ["a", " "]}, r"row 1 \(from 0\): expected a document with a non-empty title or text"),
    ],
)
def test_bad_parquet_names_the_column_type_or_row(tmp_path, table, message):
    cfg = retrieval(tmp_path, "csv")
    pq.write_table(pa.table(table), tmp_path / "corpus.parquet")
    with pytest.raises(InputError, match=message):
        load_dataset({**cfg, "corpus": "corpus.parquet"})


def test_bad_parquet_qrels(tmp_path):
    cfg = retrieval(tmp_path, "parquet")
    for scores, message in (([1.0], r"a column 'relevance' \(relevance\) of integers, got type double"),
                            ([2**40], r"row 0 \(from 0\): expected a 'relevance' \(relevance\) that fits in int32")):
        pq.write_table(pa.table({"qid": ["q1"], "docid": ["d1"], "relevance": scores}), tmp_path / "qrels" / "train.parquet")
        with pytest.raises(InputError, match=message):
            load_dataset(cfg)
    (tmp_path / "qrels" / "train.parquet").write_text("qid,docid,relevance\n")
    with pytest.raises(InputError, match=r"train\.parquet: expected a Parquet file"):
        load_dataset(cfg)


def test_duplicates_across_shards_name_both_files(tmp_path):
    cfg = retrieval(tmp_path, "parquet")
    write(tmp_path / "more" / "corpus.parquet", "parquet", ["docid", "text"], [["d9", "x"], ["d1", "again"]])
    with pytest.raises(InputError, match=r"more/corpus\.parquet, row 1 \(from 0\): expected a unique docid, "
                                         r"got d1 again \(first on .*/corpus\.parquet, row 0 \(from 0\)\)"):
        load_dataset({**cfg, "corpus": ["corpus.parquet", "more/corpus.parquet"]})


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ({"corpus": {"id": "doc"}}, r"dataset\.columns\.corpus maps columns to \['doc'\]; the project's names here are"),
        ({"corpus": {"a": "text", "b": "text"}}, r"dataset\.columns\.corpus maps more than one column to \['text'\]"),
        ({"docs": {"a": "text"}}, r"dataset\.columns \(format table, task retrieval\) must be \{corpus"),
        ({"qrels": ["a"]}, r"dataset\.columns\.qrels must map the file's column names"),
    ],
)
def test_column_map_errors(tmp_path, columns, message):
    with pytest.raises(ConfigError, match=message):
        load_dataset({**retrieval(tmp_path, "csv"), "columns": columns})


def test_unknown_extension(tmp_path):
    cfg = retrieval(tmp_path, "csv")
    (tmp_path / "corpus.txt").write_text("docid,text\n")
    with pytest.raises(InputError, match=r"corpus\.txt: expected a file ending in \.csv, \.tsv, \.jsonl, \.parquet"):
        load_dataset({**cfg, "corpus": "corpus.txt"})


# --- sentence pairs (task sts) -------------------------------------------------------------------------

PAIRS = [("A man, \"quoted\", plays.", "A man\tplays a guitar.", 4.5),
         ("Two\nlines", "'single'", None),  # no score: an unlabelled pair
         ("Third pair", "third, pair", 0.0)]


def pairs_cfg(root, fmt, **kw) -> dict:
    return {"format": "table", "path": str(root), "splits": ["test"], "files": {"test": [f"*.{fmt}"]}, **kw}


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl", "parquet"])
def test_pairs_every_format_with_a_map(tmp_path, fmt):
    rows = [[i, a, b, s if s is not None else ("" if fmt in ("csv", "tsv") else None)] for i, (a, b, s) in
            enumerate(PAIRS)]
    write(tmp_path / f"pairs.{fmt}", fmt, ["id", "premise", "hypothesis", "similarity"], rows)
    cfg = pairs_cfg(tmp_path, fmt, columns={"premise": "text_a", "hypothesis": "text_b", "similarity": "score"})
    table = load_pairs(cfg)["test"]
    assert [(r["text_a"], r["text_b"], r["gold"]) for r in table.to_pylist()] == PAIRS
    first = 2 if fmt in ("csv", "tsv") else (1 if fmt == "jsonl" else 0)  # the header is line 1; Parquet rows from 0
    assert table["pair_id"].to_pylist()[0] == f"pairs.{fmt}:{first}"
    assert pair_files(cfg) == [str(tmp_path / f"pairs.{fmt}")]
    assert load_pair_set(pair_set_spec(cfg, "test")).equals(table)


def test_pairs_hf_layout_needs_no_map_and_a_score_is_optional(tmp_path):
    write(tmp_path / "data" / "test-00000-of-00001.parquet", "parquet", ["sentence1", "sentence2", "score"],
          [list(p) for p in PAIRS])
    cfg = pairs_cfg(tmp_path, "parquet", files={"test": ["data/test-*.parquet"]})
    assert [(r["text_a"], r["text_b"], r["gold"]) for r in load_pairs(cfg)["test"].to_pylist()] == PAIRS
    write(tmp_path / "p.tsv", "tsv", ["text_b", "text_a"], [["b1", "a1"], ["b2", "a2"]])
    table = load_pairs(pairs_cfg(tmp_path, "tsv"))["test"]
    assert table["text_a"].to_pylist() == ["a1", "a2"] and table["gold"].null_count == 2


def test_pairs_errors(tmp_path):
    write(tmp_path / "p.csv", "csv", ["s1", "s2", "label"], [["a", "b", "1"], ["c", "", "2"], ["e", "f", "x"]])
    cfg = pairs_cfg(tmp_path, "csv", columns={"s1": "text_a", "s2": "text_b", "label": "score"})
    with pytest.raises(InputError, match=r"p\.csv, line 4: expected a number in 'label'"):
        load_pairs(cfg)
    write(tmp_path / "p.csv", "csv", ["s1", "s2", "label"], [["a", "b", "1"], ["c", "", "2"]])
    with pytest.raises(InputError, match=r"p\.csv, line 3: expected a non-empty sentence1 and sentence2"):
        load_pairs(cfg)
    with pytest.raises(InputError, match=r"expected a column named 'text_a' or 'sentence1' for text_a .*"
                                         r"got columns \['s1', 's2', 'label'\]"):
        load_pairs(pairs_cfg(tmp_path, "csv"))
    pq.write_table(pa.table({"sentence1": ["a"], "sentence2": ["b"], "score": ["4.0"]}), tmp_path / "p.parquet")
    with pytest.raises(InputError, match=r"p\.parquet: expected a column 'score' \(score\) of numbers, got type string"):
        load_pairs(pairs_cfg(tmp_path, "parquet"))


def test_pairs_columns_config(tmp_path):
    write(tmp_path / "p.csv", "csv", ["s1", "s2"], [["a", "b"]])
    with pytest.raises(ConfigError, match=r"dataset\.columns maps columns to \['sentence'\]"):
        pair_set_spec(pairs_cfg(tmp_path, "csv", columns={"s1": "sentence"}), "test")
    write(tmp_path / "hf" / "p.csv", "csv", ["sentence1", "sentence2"], [["a", "b"]])
    with pytest.raises(InputError, match=r"expected a column named 'text_a' or 'sentence1' for text_a"):
        load_pairs(pairs_cfg(tmp_path / "hf", "csv", columns={"sentence1": "text_b"}))  # mapped: no longer text_a's
    stsb = {"format": "pairs_tsv", "path": str(tmp_path), "splits": ["test"], "files": {"test": ["x"]}}
    with pytest.raises(ConfigError, match=r"dataset\.columns names columns, which only format table has"):
        pair_set_spec({**stsb, "columns": {"s1": "text_a"}}, "test")
    assert "columns" not in pair_set_spec(stsb, "test")  # the other formats' job parameters stay as they were
    eval_set = {"format": "table", "path": str(tmp_path), "files": ["p.csv"], "columns": {"s1": "text_a", "s2": "text_b"}}
    spec = pair_set_spec({**stsb, "eval_sets": {"extra": eval_set}}, "extra")
    assert spec["columns"] == {"s1": "text_a", "s2": "text_b"}
    assert load_pair_set(spec)["text_b"].to_pylist() == ["b"]


def test_quoting_none_reads_every_quote_as_text(tmp_path):
    """A TSV written without quoting (GLUE's STS-B: a header, sentences that start with a quote): its
    quotes are text with `quoting: none`; standard quoting stops on the first malformed one."""
    (tmp_path / "train.tsv").write_text('index\tsentence1\tsentence2\tscore\n'
                                        '0\t"Yes," he said.\t"Yes"\t4.0\n1\tA "b" c\t"whole"\t1.5\n')
    cfg = pairs_cfg(tmp_path, "tsv", quoting="none")
    assert [(r["text_a"], r["text_b"]) for r in load_pairs(cfg)["test"].to_pylist()] == [
        ('"Yes," he said.', '"Yes"'), ('A "b" c', '"whole"')]
    with pytest.raises(InputError, match=r"train\.tsv, line 2: expected a well-formed record"):
        load_pairs(pairs_cfg(tmp_path, "tsv"))
    with pytest.raises(ConfigError, match=r"dataset\.quoting must be one of csv, none, got 'single'"):
        load_pairs(pairs_cfg(tmp_path, "tsv", quoting="single"))
    tsv = {"format": "pairs_tsv", "path": str(tmp_path), "splits": ["test"], "files": {"test": ["x"]}}
    with pytest.raises(ConfigError, match=r"dataset\.eval_sets\.e\.quoting applies to format table only"):
        pair_set_spec({**tsv, "eval_sets": {"e": {"format": "stsb", "files": ["x"], "quoting": "none"}}}, "e")
    (tmp_path / "corpus.tsv").write_text('docid\ttext\nd1\t"A" document\n')
    (tmp_path / "queries.tsv").write_text('qid\ttext\nq1\t"quoted" start\n')
    (tmp_path / "qrels.tsv").write_text("qid\tdocid\trelevance\nq1\td1\t1\n")
    ds = load_dataset({"format": "table", "path": str(tmp_path), "splits": ["test"], "corpus": "corpus.tsv",
                       "queries": "queries.tsv", "qrels": "qrels.tsv", "quoting": "none"})
    assert ds.corpus["text"].to_pylist() == ['"A" document']
    assert ds.queries["test"]["text"].to_pylist() == ['"quoted" start']
