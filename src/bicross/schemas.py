"""The Parquet schemas of every artifact, and atomic reading/writing of them.

Each artifact kind is defined once here; writers cast to the schema so a wrong column type fails
at the writer, not three rules later.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

CORPUS = pa.schema([("docid", pa.string()), ("title", pa.string()), ("text", pa.string())])
QUERIES = pa.schema([("qid", pa.string()), ("text", pa.string())])
QRELS = pa.schema([("qid", pa.string()), ("docid", pa.string()), ("relevance", pa.int32())])
PAIRS = pa.schema(
    [("pair_id", pa.string()), ("text_a", pa.string()), ("text_b", pa.string()), ("gold", pa.float32())]
)
# sts: the training pairs with gold scores dropped (the gold-label firewall), and per-pair scores
PAIR_TEXTS = pa.schema([("pair_id", pa.string()), ("text_a", pa.string()), ("text_b", pa.string())])
PAIR_SCORES = pa.schema([("pair_id", pa.string()), ("score", pa.float32())])
TOKENS = pa.schema([("id", pa.string()), ("input_ids", pa.list_(pa.int32()))])
RUN = pa.schema(
    [("qid", pa.string()), ("docid", pa.string()), ("rank", pa.int32()), ("score", pa.float32())]
)
TEACHER = pa.schema([("qid", pa.string()), ("docid", pa.string()), ("score", pa.float32())])
NEGATIVES = pa.schema(
    [("qid", pa.string()), ("positives", pa.list_(pa.string())), ("negatives", pa.list_(pa.string()))]
)
# per-query values of each metric (retrieval) and per-pair scores with gold (sts): the paired tests' input
QUERY_VALUES = pa.schema([("qid", pa.string()), ("metric", pa.string()), ("value", pa.float64())])
PAIR_VALUES = pa.schema([("pair_id", pa.string()), ("score", pa.float64()), ("gold", pa.float64())])
# one paired test of a summary row against another row (bicross.significance)
CHANGES = pa.schema(
    [("split", pa.string()), ("encoder", pa.string()), ("iteration", pa.int32()), ("base_encoder", pa.string()),
     ("base_iteration", pa.int32()), ("metric", pa.string()), ("difference", pa.float64()), ("low", pa.float64()),
     ("high", pa.float64()), ("p", pa.float64()), ("n", pa.int64()), ("test", pa.string())]
)
# a training job's per optimizer step mean loss and learning rate (bicross.losscurve), in its model folder
LOSS = pa.schema([("step", pa.int32()), ("loss", pa.float64()), ("learning_rate", pa.float64())])
METRICS = pa.schema(
    [
        ("iteration", pa.int32()),
        ("encoder", pa.string()),
        ("split", pa.string()),
        ("metric", pa.string()),
        ("value", pa.float64()),
    ]
)


def embeddings_schema(dim: int, id_column: str = "docid") -> pa.Schema:
    """An id + a fixed-size float32 vector, so readers get a contiguous (n, dim) matrix."""
    return pa.schema([(id_column, pa.string()), ("embedding", pa.list_(pa.float32(), dim))])


def _temporaries(name: str) -> re.Pattern:
    """Names of the temporaries a write of `name` makes: `.<name>.<8 random>.tmp` files (atomic_path) and
    `.<name>.tmp-<pid>` / `.<name>.old-<pid>` folders (a folder put in place by replace_dir)."""
    return re.compile(rf"^\.{re.escape(name)}\.([a-z0-9_]{{8}}\.tmp|(tmp|old)-\d+)$")


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Remove what killed writes of `path` left beside it (returns what went). Call it only where nothing
    else is writing `path` now: in its job (Snakemake runs one job per output) or its writer."""
    path = Path(path)
    pattern = _temporaries(path.name)
    try:
        found = [child for child in path.parent.iterdir() if pattern.match(child.name)]
    except FileNotFoundError:
        return []
    for child in found:
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
    return found


def atomic_path(path: str | os.PathLike) -> Path:
    """A new empty temporary sibling of `path`, to write first and then rename over `path`.

    Left-overs of killed writes of `path` are removed first. The file is created with mode 0666 less
    the umask, as a plain `open` would (not mkstemp's 0600), so a group sharing the results reads it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    while True:
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return tmp


# rows per Parquet row group: readers that stream a file (bicross.parts.row_blocks) hold one at a time
ROW_GROUP_ROWS = 65536


def write_table(table: pa.Table, path: str | os.PathLike, schema: pa.Schema | None = None) -> None:
    """Write a Parquet file atomically (a crash never leaves a half-written artifact)."""
    if schema is not None:
        table = table.select(schema.names).cast(schema)
    tmp = atomic_path(path)
    try:
        pq.write_table(table, tmp, row_group_size=ROW_GROUP_ROWS)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class AtomicParquetWriter:
    """Write a large Parquet file batch by batch; it appears under its name only when closed cleanly."""

    def __init__(self, path: str | os.PathLike, schema: pa.Schema):
        self.path = Path(path)
        self.schema = schema
        self._tmp = atomic_path(self.path)
        self._writer = pq.ParquetWriter(self._tmp, schema)

    def write(self, table: pa.Table) -> None:
        self._writer.write_table(table.select(self.schema.names).cast(self.schema), row_group_size=ROW_GROUP_ROWS)

    def __enter__(self) -> AtomicParquetWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._writer.close()
        if exc_type is None:
            os.replace(self._tmp, self.path)
        else:
            self._tmp.unlink(missing_ok=True)


def replace_dir(tmp: str | os.PathLike, out: str | os.PathLike) -> None:
    """Put the finished folder `tmp` at `out` by renames only, so `out` is never half-written."""
    tmp, out = Path(tmp), Path(out)
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)


@contextmanager
def atomic_dir(out: str | os.PathLike) -> Iterator[Path]:
    """A folder written whole: yields the temporary sibling `.<name>.tmp-<pid>` (not yet created) to fill,
    then puts it at `out` with replace_dir; on an error it is removed and `out` is left as it was.
    Left-overs of killed writes of `out` are removed first."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    try:
        yield tmp
        replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_text_atomic(text: str, path: str | os.PathLike) -> None:
    tmp = atomic_path(path)
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
