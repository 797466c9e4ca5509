"""A stage's work split into parts, one Snakemake job each, and the merge that puts them back together.

Corpus encoding splits the corpus into contiguous row ranges (`shard_rows`); retrieval splits a split's
queries the same way; reranking and teacher scoring split their pairs by query (`group_rows`: whole
queries in each part, in sorted order), and STS scoring splits each split's pairs by row. Every part's
output keeps its rows in the order the one-job stage writes them, so `merge_parts` (concatenating the
parts in order) is the one-job output itself.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bicross.schemas import AtomicParquetWriter

log = logging.getLogger("bicross.parts")


def shard_rows(n: int, shard: int, shards: int) -> slice:
    """Rows of shard `shard` of `shards`: contiguous, sizes differing by at most one."""
    if not 0 <= shard < shards:
        raise ValueError(f"shard {shard} is outside 0..{shards - 1}")
    return slice(n * shard // shards, n * (shard + 1) // shards)


def group_rows(table: pa.Table, column: str, part: int, parts: int) -> pa.Table:
    """The rows of `table` whose `column` value is in part `part` of `parts` of its sorted distinct
    values (every row of a value in one part; values in order across parts)."""
    if parts == 1:
        shard_rows(1, part, parts)  # checks the range
        return table
    values = pc.unique(table.column(column)).sort()
    chosen = values[shard_rows(len(values), part, parts)]
    return table.filter(pc.is_in(table.column(column), value_set=chosen))


def merge_parts(parts: Sequence[str | os.PathLike], out: str | os.PathLike) -> int:
    """Concatenate the part files in order into `out` (atomically), one row group at a time, so memory
    holds one row group; returns the rows written. Every part must have the first part's schema."""
    if not parts:
        raise ValueError(f"{out}: no parts to merge")
    schema = pq.read_schema(parts[0])
    rows = 0
    with AtomicParquetWriter(out, schema) as writer:
        for path in parts:
            file = pq.ParquetFile(path)
            if not file.schema_arrow.equals(schema):
                raise ValueError(f"{path}: schema {file.schema_arrow} differs from {parts[0]}'s {schema}")
            for group in range(file.num_row_groups):
                table = file.read_row_group(group)
                writer.write(table)
                rows += table.num_rows
    log.info("merged %d parts, %d rows, into %s", len(parts), rows, out)
    return rows


def row_blocks(path: str | os.PathLike, rows: slice, block: int):
    """Yield the Parquet table rows `rows` (a slice with step 1) of `path` in tables of at most `block`
    rows, reading one row group at a time."""
    file = pq.ParquetFile(path)
    start, stop = rows.start or 0, min(rows.stop if rows.stop is not None else file.metadata.num_rows,
                                       file.metadata.num_rows)
    offset = 0
    pending: list[pa.Table] = []
    for group in range(file.num_row_groups):
        size = file.metadata.row_group(group).num_rows
        lo, hi = max(start - offset, 0), min(stop - offset, size)
        offset += size
        if lo >= hi:
            if offset >= stop:
                break
            continue
        table = file.read_row_group(group).slice(lo, hi - lo)
        while table.num_rows:
            have = sum(t.num_rows for t in pending)
            take = min(block - have, table.num_rows)
            pending.append(table.slice(0, take))
            table = table.slice(take)
            if have + take == block:
                yield pa.concat_tables(pending)
                pending = []
    if pending:
        yield pa.concat_tables(pending)

