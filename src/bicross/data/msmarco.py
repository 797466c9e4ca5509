"""MS MARCO layout: collection TSV (pid TAB text), per-split queries TSV (qid TAB text), TREC qrels."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from bicross.data import Dataset, splits_of
from bicross.data.validate import Columns, Source, build_dataset, parse_relevance, read_lines
from bicross.errors import ConfigError, InputError
from bicross.schemas import CORPUS, QRELS, QUERIES


def load_msmarco(cfg: dict) -> Dataset:
    root = Path(cfg["path"])
    splits = splits_of(cfg)
    files = {key: dict(zip(splits, split_files(cfg, key), strict=True)) for key in ("queries", "qrels")}
    corpus = read_tsv(root / collection_file(cfg), CORPUS, "passages: pid TAB text")
    queries = {s: read_tsv(root / files["queries"][s], QUERIES, "queries: qid TAB text") for s in splits}
    qrels = {s: read_trec_qrels(root / files["qrels"][s]) for s in splits}
    return build_dataset(corpus, queries, qrels, cfg.get("on_unknown_id", "error"))


def collection_file(cfg: dict) -> str:
    if not cfg.get("collection"):
        raise ConfigError("dataset.collection must name the collection TSV (pid TAB text)")
    return cfg["collection"]


def split_files(cfg: dict, key: str) -> list[str]:
    """`dataset.queries` or `dataset.qrels`: the file of each split, in `dataset.splits` order."""
    mapping = cfg.get(key) or {}
    if not isinstance(mapping, Mapping):
        raise ConfigError(f"dataset.{key} (format msmarco) must map each split to its file, got {mapping!r}")
    splits = splits_of(cfg)
    if missing := [s for s in splits if s not in mapping]:
        raise ConfigError(f"dataset.{key} must name a file for every split; missing {missing}")
    return [mapping[s] for s in splits]


def read_tsv(path, schema, what: str) -> Source:
    """id TAB text per line, streamed; a corpus gets an empty title."""
    cols = Columns(schema, path)
    corpus = "title" in schema.names
    for n, line in read_lines(path, what):
        fields = line.split("\t")
        if len(fields) != 2:
            raise InputError(path, n, "2 tab-separated fields (id, text)", f"{len(fields)} fields")
        key = fields[0].strip()
        if not key:
            raise InputError(path, n, "a non-empty id in the first field", repr(line))
        if corpus:
            cols.append(n, key, "", fields[1])
        else:
            cols.append(n, key, fields[1])
    return cols.source()


def read_trec_qrels(path) -> Source:
    """TREC qrels: `qid iter pid rel`, whitespace-separated; iter (0 or Q0) is ignored."""
    cols = Columns(QRELS, path)
    for n, line in read_lines(path, "TREC qrels: qid 0 pid relevance"):
        fields = line.split()
        if len(fields) != 4:
            raise InputError(
                path,
                n,
                "4 whitespace-separated fields (qid, 0 or Q0, pid, relevance)",
                f"{len(fields)} fields",
            )
        cols.append(n, fields[0], fields[2], parse_relevance(fields[3], path, n))
    return cols.source()
