"""BEIR layout: corpus.jsonl, queries.jsonl, qrels/<split>.tsv (with or without a header)."""

from __future__ import annotations

from pathlib import Path

from bicross.data import Dataset, splits_of
from bicross.data.validate import Columns, Source, build_dataset, json_rows, parse_relevance, read_lines
from bicross.errors import InputError
from bicross.schemas import CORPUS, QRELS, QUERIES


def load_beir(cfg: dict) -> Dataset:
    splits, cache = splits_of(cfg), {}
    corpus = corpus_source(cfg)
    sources = {s: split_sources(cfg, s, cache) for s in splits}
    return build_dataset(corpus, {s: q for s, (q, _) in sources.items()}, {s: r for s, (_, r) in sources.items()},
                         cfg.get("on_unknown_id", "error"))


def corpus_source(cfg: dict) -> Source:
    return read_corpus(Path(cfg["path"]) / "corpus.jsonl")


def split_sources(cfg: dict, split: str, cache: dict | None = None) -> tuple[Source, Source]:
    """One split's (queries, qrels): queries.jsonl (read once per `cache`: every split shares it) and
    qrels/<split>.tsv; the corpus is not read."""
    root = Path(cfg["path"])
    cache = {} if cache is None else cache
    if "queries" not in cache:
        cache["queries"] = read_queries(root / "queries.jsonl")
    return cache["queries"], read_qrels(root / "qrels" / f"{split}.tsv")


def _field(obj: dict, key: str, path, n: int, required: bool = True) -> str:
    """A string field; ids written as JSON numbers become strings, a missing optional field is ""."""
    value = obj.get(key)
    if value is None and not required:
        return ""
    if key != "_id" and isinstance(value, str):
        return value
    if key == "_id" and isinstance(value, str | int) and not isinstance(value, bool) and str(value):
        return str(value)
    expected = f"a string {key!r} key" if key != "_id" else "a non-empty '_id' key (string or integer)"
    raise InputError(path, n, expected, "no such key" if key not in obj else repr(value))


def read_corpus(path) -> Source:
    cols = Columns(CORPUS, path)
    for n, obj in json_rows(path, "one JSON document per line (_id, title, text)"):
        cols.append(
            n, _field(obj, "_id", path, n), _field(obj, "title", path, n, False), _field(obj, "text", path, n)
        )
    return cols.source()


def read_queries(path) -> Source:
    cols = Columns(QUERIES, path)
    for n, obj in json_rows(path, "one JSON query per line (_id, text)"):
        cols.append(n, _field(obj, "_id", path, n), _field(obj, "text", path, n))
    return cols.source()


# The names a BEIR qrels header gives its columns, compared without case, '-', '_' or spaces
# (BEIR itself writes `query-id corpus-id score`).
_QRELS_HEADER = (
    {"queryid", "qid", "query"},
    {"corpusid", "corpus", "docid", "documentid", "doc", "pid", "passageid"},
    {"score", "relevance", "rel", "label", "grade", "judgement", "judgment"},
)


def is_qrels_header(fields: list[str]) -> bool:
    """Whether a first row names the columns (by its content, not by whether its score parses)."""
    names = ["".join(f.split()).replace("-", "").replace("_", "").lower() for f in fields]
    return len(names) == 3 and all(name in known for name, known in zip(names, _QRELS_HEADER, strict=True))


def read_qrels(path) -> Source:
    """query-id TAB corpus-id TAB score; the first line may be a header naming those columns."""
    cols = Columns(QRELS, path)
    first = True
    for n, line in read_lines(path, "qrels: query-id TAB corpus-id TAB score"):
        fields = line.split("\t")
        if len(fields) != 3:
            raise InputError(
                path, n, "3 tab-separated fields (query-id, corpus-id, score)", f"{len(fields)} fields"
            )
        expected = "an integer relevance"
        if first:
            first = False
            if is_qrels_header(fields):
                continue
            expected = "a header (query-id, corpus-id, score) or a row with an integer relevance"
        qid, docid = fields[0].strip(), fields[1].strip()
        if not qid or not docid:
            raise InputError(path, n, "a non-empty query-id and corpus-id", repr(line))
        cols.append(n, qid, docid, parse_relevance(fields[2], path, n, expected))
    return cols.source()
