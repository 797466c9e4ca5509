"""Datasets: load BEIR / MS MARCO / named-column table / builtin data into Arrow tables and write the `data/` artifacts.

Loaders are imported lazily so `import bicross.data` stays cheap and works before every format exists.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from bicross.errors import ConfigError
from bicross.schemas import CORPUS, QRELS, QUERIES, write_table


@dataclass
class Dataset:
    """corpus (docid, title, text); per split: queries (qid, text) and qrels (qid, docid, relevance)."""

    corpus: pa.Table
    queries: dict[str, pa.Table] = field(default_factory=dict)
    qrels: dict[str, pa.Table] = field(default_factory=dict)


FORMATS = ("beir", "msmarco", "table", "builtin")


def _loader(cfg: dict):
    """The module of the config's retrieval format (each has corpus_source and split_sources)."""
    fmt = cfg.get("format")
    if fmt not in FORMATS:
        raise ConfigError(f"dataset.format must be one of {', '.join(FORMATS)}; got {fmt!r}")
    import importlib

    return importlib.import_module(f"bicross.data.{fmt}")


def load_dataset(cfg: dict) -> Dataset:
    """Load the `dataset:` config section's data, checked (see bicross.data.validate)."""
    return getattr(_loader(cfg), f"load_{cfg['format']}")(cfg)


# --- the corpus and each split apart (the workflow's prepare_corpus and prepare_split) ---------------

def load_corpus(cfg: dict) -> pa.Table:
    """The corpus alone (no query or qrels file is read), checked: at least one document, unique docids,
    a title or text each. `cfg`: the `dataset:` section or its `corpus_spec`."""
    from bicross.data.validate import check_corpus

    return check_corpus(_loader(cfg).corpus_source(cfg))


def load_split(cfg: dict, split: str, docids: pa.Array) -> tuple[pa.Table, pa.Table]:
    """One split's (queries, qrels), checked as load_dataset checks them, its qrels against the corpus's
    `docids` (the corpus itself is not read; builtin builds it in memory, it is small). `cfg`: the
    `dataset:` section or the split's `split_spec`."""
    from bicross.data.validate import build_split, check_on_unknown_id

    on_unknown_id = cfg.get("on_unknown_id", "error")
    check_on_unknown_id(on_unknown_id)
    queries, qrels = _loader(cfg).split_sources(cfg, split)
    return build_split(queries, qrels, docids, split, on_unknown_id)


def corpus_spec(cfg: dict) -> dict:
    """What the corpus is read from, as plain data: the keys of the `dataset:` section the corpus
    depends on, never the splits. prepare_corpus's parameter, so adding a split or editing a split's
    settings leaves the corpus (and everything computed from it) up to date. A valid `cfg` for
    load_corpus."""
    fmt, path = cfg.get("format"), cfg.get("path") or ""
    _loader(cfg)  # the format is known
    if fmt == "beir":
        return {"format": fmt, "path": path}
    if fmt == "msmarco":
        from bicross.data.msmarco import collection_file

        return {"format": fmt, "path": path, "collection": collection_file(cfg)}
    if fmt == "table":
        from bicross.data.table import file_patterns, quoting_of, retrieval_columns

        return {"format": fmt, "path": path, "corpus": list(file_patterns(cfg, "corpus")),
                "columns": {"corpus": retrieval_columns(cfg)["corpus"]},
                "quoting": quoting_of(cfg.get("quoting"), "dataset.quoting")}
    return {"format": fmt, "builtin": dict(cfg.get("builtin") or {})}


def split_spec(cfg: dict, split: str) -> dict:
    """What one split's queries and qrels are read from, as plain data: a one-split `dataset:` section
    holding only what that split depends on (its files, how they are read, on_unknown_id). A valid `cfg`
    for load_split; adding another split, or editing its files or settings, changes no other split's."""
    fmt, path = cfg.get("format"), cfg.get("path") or ""
    _loader(cfg)
    base = {"format": fmt, "path": path, "splits": [split], "on_unknown_id": cfg.get("on_unknown_id", "error")}
    if fmt == "beir":
        return base
    if fmt == "msmarco":
        from bicross.data.msmarco import split_file

        return {**base, **{key: {split: split_file(cfg, key, split)} for key in ("queries", "qrels")}}
    if fmt == "table":
        from bicross.data.table import file_patterns, quoting_of, retrieval_columns

        columns = retrieval_columns(cfg)
        return {**base, **{kind: list(file_patterns(cfg, kind, split)) for kind in ("queries", "qrels")},
                "columns": {kind: columns[kind] for kind in ("queries", "qrels")},
                "quoting": quoting_of(cfg.get("quoting"), "dataset.quoting")}
    return {"format": fmt, "builtin": dict(cfg.get("builtin") or {}), "splits": [split]}


def split_job(cfg: dict, split: str, holdout: dict | None = None) -> dict:
    """What the job that writes `split` reads: {"dataset": the split_spec of the split it is read from},
    and for the held-out validation split and the train split it is carved from, {"holdout": `holdout`}
    ({split, name, size, seed}: see hold_out) with the train split's spec: both jobs carve the same
    queries out of the same train split, deterministically, so they agree without sharing a job."""
    carved = bool(holdout) and split in (holdout["split"], holdout["name"])
    if not carved:
        return {"dataset": split_spec(cfg, split)}
    if holdout["name"] in splits_of(cfg):
        raise ConfigError(f"the dataset already has a split {holdout['name']!r}; the held-out validation queries "
                          f"need that name")
    return {"dataset": split_spec(cfg, holdout["split"]), "holdout": dict(holdout)}


def input_files(cfg: dict) -> list[str]:
    """Every file a retrieval dataset is read from (corpus_input_files and each split's
    split_input_files); none for builtin."""
    if cfg.get("format") == "table":
        from bicross.data.table import table_files

        return table_files(cfg)
    files = corpus_input_files(cfg)
    for split in splits_of(cfg):
        files += [f for f in split_input_files(cfg, split) if f not in files]
    return files


def corpus_input_files(cfg: dict) -> list[str]:
    """The files the corpus is read from (the workflow's inputs of prepare_corpus, so an edited corpus
    file prepares it again); none for builtin."""
    fmt, root = cfg.get("format"), cfg.get("path") or ""
    if fmt == "table":
        from bicross.data.table import corpus_files

        return corpus_files(cfg)
    if fmt == "beir":
        return [os.path.join(root, "corpus.jsonl")]
    if fmt == "msmarco":
        from bicross.data.msmarco import collection_file

        return [os.path.join(root, collection_file(cfg))]
    return []


def split_input_files(cfg: dict, split: str) -> list[str]:
    """The files one split's queries and qrels are read from (the workflow's inputs of prepare_split, so
    an edited qrels file prepares that split again and no other); none for builtin."""
    fmt, root = cfg.get("format"), cfg.get("path") or ""
    if fmt == "table":
        from bicross.data.table import split_input_files as table_split_files

        return table_split_files(cfg, split)
    if fmt == "beir":
        files = ["queries.jsonl", f"qrels/{split}.tsv"]
    elif fmt == "msmarco":
        from bicross.data.msmarco import split_file

        files = [split_file(cfg, "queries", split), split_file(cfg, "qrels", split)]
    else:
        return []
    return [os.path.join(root, f) for f in files]


def write_dataset(ds: Dataset, outdir) -> None:
    """Write corpus.parquet, queries/<split>.parquet and qrels/<split>.parquet, each atomically."""
    outdir = Path(outdir)
    write_table(ds.corpus, outdir / "corpus.parquet", CORPUS)
    for split, table in ds.queries.items():
        write_table(table, outdir / "queries" / f"{split}.parquet", QUERIES)
    for split, table in ds.qrels.items():
        write_table(table, outdir / "qrels" / f"{split}.parquet", QRELS)


def hold_out(ds: Dataset, train_split: str, name: str, size: int, seed: int) -> int:
    """Move `size` train queries with a positive (at most a fifth of them), drawn with `seed`, out of
    `train_split` into a new split `name`: validation queries that no training step sees.

    Returns how many moved. Raises ConfigError when the train split has fewer than 5 such queries.
    """
    if name in ds.queries:
        raise ConfigError(f"the dataset already has a split {name!r}; the held-out validation queries need that name")
    kept, held, count = carve(ds.queries[train_split], ds.qrels[train_split], train_split, size, seed)
    (ds.queries[train_split], ds.qrels[train_split]), (ds.queries[name], ds.qrels[name]) = kept, held
    return count


def carve(queries: pa.Table, qrels: pa.Table, train_split: str, size: int, seed: int):
    """((queries, qrels) kept, (queries, qrels) held out, how many held out) of hold_out: the same
    queries for the same tables and seed, whichever job asks."""
    import numpy as np
    import pyarrow.compute as pc

    positive = qrels.filter(pc.greater(qrels.column("relevance"), 0))
    candidates = sorted(set(positive.column("qid").to_pylist()))
    count = min(int(size), len(candidates) // 5)
    if count < 1:
        raise ConfigError(f"split {train_split!r} has {len(candidates)} queries with a positive: too few to hold "
                          f"out validation queries (validation.holdout_queries takes at most a fifth); name a "
                          f"validation split (validation.split) or set it to null")
    chosen = pa.array(np.random.default_rng(seed).choice(candidates, count, replace=False).tolist(), pa.string())
    parts = []
    for table in (queries, qrels):
        held = pc.is_in(table.column("qid"), value_set=chosen)
        parts.append((table.filter(pc.invert(held)), table.filter(held)))
    (q_kept, q_held), (r_kept, r_held) = parts
    return (q_kept, r_kept), (q_held, r_held), count


def splits_of(cfg: dict) -> list[str]:
    """The splits to prepare (config `splits`)."""
    splits = cfg.get("splits")
    if not splits or not isinstance(splits, list):
        raise ConfigError(f"dataset.splits must be a non-empty list of split names, got {splits!r}")
    return [str(s) for s in splits]
