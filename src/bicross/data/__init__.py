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


def load_dataset(cfg: dict) -> Dataset:
    """Load the `dataset:` config section's data, checked (see bicross.data.validate)."""
    fmt = cfg.get("format")
    if fmt == "beir":
        from bicross.data.beir import load_beir

        return load_beir(cfg)
    if fmt == "msmarco":
        from bicross.data.msmarco import load_msmarco

        return load_msmarco(cfg)
    if fmt == "table":
        from bicross.data.table import load_table

        return load_table(cfg)
    if fmt == "builtin":
        from bicross.data.builtin import load_builtin

        return load_builtin(cfg)
    raise ConfigError(f"dataset.format must be one of beir, msmarco, table, builtin; got {fmt!r}")


def input_files(cfg: dict) -> list[str]:
    """The files a retrieval dataset is read from (the workflow's inputs of prepare_data, so an edited
    file prepares the data again); none for builtin."""
    fmt, root = cfg.get("format"), cfg.get("path") or ""
    if fmt == "table":
        from bicross.data.table import table_files

        return table_files(cfg)
    splits = splits_of(cfg)
    if fmt == "beir":
        files = ["corpus.jsonl", "queries.jsonl", *(f"qrels/{s}.tsv" for s in splits)]
    elif fmt == "msmarco":
        from bicross.data.msmarco import collection_file, split_files

        files = [collection_file(cfg), *split_files(cfg, "queries"), *split_files(cfg, "qrels")]
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
    import numpy as np
    import pyarrow.compute as pc

    if name in ds.queries:
        raise ConfigError(f"the dataset already has a split {name!r}; the held-out validation queries need that name")
    qrels = ds.qrels[train_split]
    positive = qrels.filter(pc.greater(qrels.column("relevance"), 0))
    candidates = sorted(set(positive.column("qid").to_pylist()))
    count = min(int(size), len(candidates) // 5)
    if count < 1:
        raise ConfigError(f"split {train_split!r} has {len(candidates)} queries with a positive: too few to hold "
                          f"out validation queries (validation.holdout_queries takes at most a fifth); name a "
                          f"validation split (validation.split) or set it to null")
    chosen = pa.array(np.random.default_rng(seed).choice(candidates, count, replace=False).tolist(), pa.string())
    for tables in (ds.queries, ds.qrels):
        table = tables[train_split]
        held = pc.is_in(table.column("qid"), value_set=chosen)
        tables[name] = table.filter(held)
        tables[train_split] = table.filter(pc.invert(held))
    return count


def splits_of(cfg: dict) -> list[str]:
    """The splits to prepare (config `splits`)."""
    splits = cfg.get("splits")
    if not splits or not isinstance(splits, list):
        raise ConfigError(f"dataset.splits must be a non-empty list of split names, got {splits!r}")
    return [str(s) for s in splits]
