"""MS MARCO layout: collection TSV (pid TAB text), per-split queries TSV (qid TAB text), TREC qrels."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from bicross.data import Dataset, splits_of
from bicross.data.validate import Columns, Source, build_dataset, parse_relevance, read_lines
from bicross.errors import ConfigError, InputError
from bicross.schemas import CORPUS, QRELS, QUERIES


def load_msmarco(cfg: dict) -> Dataset:
    splits = splits_of(cfg)
    for key in ("queries", "qrels"):  # every split's files are named before any file is read
        split_files(cfg, key)
    corpus = corpus_source(cfg)
    sources = {s: split_sources(cfg, s) for s in splits}
    return build_dataset(corpus, {s: q for s, (q, _) in sources.items()}, {s: r for s, (_, r) in sources.items()},
                         cfg.get("on_unknown_id", "error"))


def corpus_source(cfg: dict) -> Source:
    return read_tsv(Path(cfg["path"]) / collection_file(cfg), CORPUS, "passages: pid TAB text")


def split_sources(cfg: dict, split: str, cache: dict | None = None) -> tuple[Source, Source]:
    """One split's (queries, qrels) from its own two files; the collection is not read."""
    root = Path(cfg["path"])
    queries, qrels = (split_file(cfg, key, split) for key in ("queries", "qrels"))
    return read_tsv(root / queries, QUERIES, "queries: qid TAB text"), read_trec_qrels(root / qrels)


def collection_file(cfg: dict) -> str:
    if not cfg.get("collection"):
        raise ConfigError("dataset.collection must name the collection TSV (pid TAB text)")
    return cfg["collection"]


def _split_mapping(cfg: dict, key: str) -> Mapping:
    mapping = cfg.get(key) or {}
    if not isinstance(mapping, Mapping):
        raise ConfigError(f"dataset.{key} (format msmarco) must map each split to its file, got {mapping!r}")
    return mapping


def split_files(cfg: dict, key: str) -> list[str]:
    """`dataset.queries` or `dataset.qrels`: the file of each split, in `dataset.splits` order."""
    mapping = _split_mapping(cfg, key)
    splits = splits_of(cfg)
    if missing := [s for s in splits if s not in mapping]:
        raise ConfigError(f"dataset.{key} must name a file for every split; missing {missing}")
    return [mapping[s] for s in splits]


def split_file(cfg: dict, key: str, split: str) -> str:
    """`dataset.queries` or `dataset.qrels`: the file of one split."""
    mapping = _split_mapping(cfg, key)
    if split not in mapping:
        raise ConfigError(f"dataset.{key} must name a file for every split; missing {[split]}")
    return mapping[split]


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
