"""Checks every dataset loader shares: unique ids, non-empty texts, qrels that name known ids.

Loaders parse a file into an Arrow table and remember the line of each row (a `Source`), so the checks
run vectorised over whole columns (fast on 8.8M passages) yet still name the file and line at fault.
A generator with no file (builtin) passes `lines=None`: row i is then reported as line i + 1.
"""

from __future__ import annotations

import bisect
import codecs
import glob
import itertools
import json
import logging
import math
import os
import re
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from bicross.data import Dataset
from bicross.errors import ConfigError, InputError, place
from bicross.schemas import CORPUS, QRELS, QUERIES

log = logging.getLogger("bicross.data")

ON_UNKNOWN_ID = ("error", "drop")


@dataclass
class Source:
    """A parsed table and where its rows came from."""

    table: pa.Table
    path: str
    lines: Sequence[int] | None = None  # 1-based line of each row; None: row i is line i + 1
    unit: str = "line"  # "row": `lines` holds Parquet rows, counted from 0

    def line(self, row: int) -> int:
        return row + 1 if self.lines is None else int(self.lines[row])

    def locate(self, row: int) -> tuple[str, int, str]:
        """The file, line (or Parquet row) and unit of a row of the table."""
        return self.path, self.line(row), self.unit

    def error(self, row: int, expected: str, got: str | None = None) -> InputError:
        path, line, unit = self.locate(row)
        return InputError(path, line, expected, got, unit)


@dataclass
class _Concatenated(Source):
    """Several files read as one table (shards): each row is located in its own file."""

    parts: tuple[Source, ...] = ()
    starts: tuple[int, ...] = ()  # the first row of each part

    def locate(self, row: int) -> tuple[str, int, str]:
        i = bisect.bisect_right(self.starts, row) - 1
        return self.parts[i].locate(row - self.starts[i])

    def line(self, row: int) -> int:
        return self.locate(row)[1]


def concat_sources(parts: Sequence[Source]) -> Source:
    """One Source of the rows of several (same schema), in order; errors still name each row's file."""
    if len(parts) == 1:
        return parts[0]
    starts = tuple(itertools.accumulate((p.table.num_rows for p in parts[:-1]), initial=0))
    table = pa.concat_tables([p.table for p in parts])
    return _Concatenated(table, ", ".join(p.path for p in parts), parts=tuple(parts), starts=starts)


class Columns:
    """Collects parsed rows into Arrow chunks, so a huge file never sits in memory as Python strings."""

    def __init__(self, schema: pa.Schema, path, chunk_rows: int = 100_000):
        self.schema, self.path, self.chunk_rows = schema, str(path), chunk_rows
        self._cols: list[list] = [[] for _ in schema]
        self._batches: list[pa.RecordBatch] = []
        self._lines = array("q")

    def append(self, line: int, *values) -> None:
        for col, value in zip(self._cols, values, strict=True):
            col.append(value)
        self._lines.append(line)
        if len(self._cols[0]) >= self.chunk_rows:
            self._flush()

    def _flush(self) -> None:
        if self._cols[0]:
            self._batches.append(pa.record_batch(self._cols, schema=self.schema))
            self._cols = [[] for _ in self.schema]

    def source(self) -> Source:
        self._flush()
        return Source(pa.Table.from_batches(self._batches, schema=self.schema), self.path, self._lines)


def numbered_lines(path, what: str) -> Iterator[tuple[int, str]]:
    """(1-based line number, text with its line end) for every line of a UTF-8 file, blank ones too.

    Reads bytes and decodes per line so an encoding error names its line. A byte-order mark at the
    start of the file (Windows editors write one) is not text: it is dropped, so it never becomes part
    of the first id.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, None, f"a file with {what}", "no such file")
    with path.open("rb") as f:
        for n, raw in enumerate(f, 1):
            if n == 1:
                raw = raw.removeprefix(codecs.BOM_UTF8)
            try:
                yield n, raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise InputError(path, n, "UTF-8 text", str(e)) from None


def read_lines(path, what: str) -> Iterator[tuple[int, str]]:
    """(1-based line number, text without the newline) for each non-blank line of a UTF-8 file
    (`numbered_lines`; blank lines, often a trailing one, are skipped)."""
    for n, line in numbered_lines(path, what):
        line = line.rstrip("\r\n")
        if line.strip():
            yield n, line


def json_rows(path, what: str) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-blank line of a JSONL file; anything but an object stops."""
    for n, line in read_lines(path, what):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(path, n, "a JSON object", f"malformed JSON ({e.msg})") from None
        if not isinstance(obj, dict):
            raise InputError(path, n, "a JSON object", type(obj).__name__)
        yield n, obj


def resolve_globs(root: str, patterns: Sequence[str], what: str) -> list[str]:
    """The files under `root` ("" = working directory) that the globs name, relative to it: expanded,
    sorted, deduplicated. A glob matching no file (or a missing file, or folder) raises InputError."""
    base = root or "."
    if not os.path.isdir(base):
        raise InputError(root, None, f"a folder holding {what}", "no such folder")
    found: set[str] = set()
    for pattern in patterns:
        hits = [h for h in glob.glob(pattern, root_dir=base, recursive=True) if os.path.isfile(os.path.join(base, h))]
        if not hits:
            got = "no file matches this glob" if glob.escape(pattern) != pattern else "no such file"
            raise InputError(Path(root) / pattern, None, what, got)
        found.update(os.path.normpath(h) for h in hits)
    return sorted(found)


def parse_relevance(field: str, path, line: int, expected: str = "an integer relevance") -> int:
    try:
        rel = int(field)
    except ValueError:
        raise InputError(path, line, expected, repr(field)) from None
    if not -(2**31) <= rel < 2**31:
        raise InputError(path, line, "a relevance that fits in int32", field)
    return rel


_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def parse_score(field: str, path, line: int, expected: str, allow_empty: bool) -> float | None:
    """A finite decimal number (a similarity score); an empty field is None when `allow_empty`."""
    text = field.strip()
    if not text and allow_empty:
        return None
    if not _NUMBER.match(text) or not math.isfinite(value := float(text)):
        raise InputError(path, line, expected, repr(field))
    return value


def check_unique(src: Source, columns: list[str], what: str) -> None:
    """Raise naming the line of the second occurrence of a repeated key."""
    t = src.table.select(columns)
    if t.group_by(columns, use_threads=False).aggregate([]).num_rows == t.num_rows:
        return
    first: dict[tuple, int] = {}  # only built on the error path
    for row, key in enumerate(zip(*(t.column(c).to_pylist() for c in columns), strict=True)):
        if key in first:
            path, line, unit = src.locate(first[key])
            where = place(line, unit) if path == src.locate(row)[0] else f"{path}, {place(line, unit)}"
            raise src.error(row, f"a unique {what}", f"{'/'.join(key)} again (first on {where})")
        first[key] = row


def check_nonempty(src: Source, columns: list[str], expected: str) -> None:
    """Raise naming the first row whose given columns are all empty (or whitespace)."""
    blank = None
    for c in columns:
        b = pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(src.table[c])), 0)
        blank = b if blank is None else pc.and_(blank, b)
    row = pc.index(blank, True).as_py()
    if row >= 0:
        key = src.table.column(0)[row].as_py()
        raise src.error(row, expected, f"an empty text for {key}")


def resolve_qrels(src: Source, qids: pa.Array, docids: pa.Array, on_unknown_id: str, split: str) -> pa.Table:
    """Qrels rows whose qid and docid are known; unknown ones raise or are dropped (and counted)."""
    t = src.table
    q_ok = pc.is_in(t["qid"], value_set=qids)
    d_ok = pc.is_in(t["docid"], value_set=docids)
    ok = pc.and_(q_ok, d_ok)
    n_bad = t.num_rows - pc.sum(ok).as_py() if t.num_rows else 0
    if n_bad == 0:
        return t
    if on_unknown_id == "error":
        row = pc.index(ok, False).as_py()
        if not q_ok[row].as_py():
            expected, got = "a qid that is in the queries", f"unknown qid {t['qid'][row].as_py()}"
        else:
            expected, got = "a docid that is in the corpus", f"unknown docid {t['docid'][row].as_py()}"
        raise src.error(row, expected + " (or set on_unknown_id: drop)", got)
    log.warning(
        "split %s: dropped %d of %d qrels rows in %s naming an unknown query (%d) or document (%d)",
        split,
        n_bad,
        t.num_rows,
        src.path,
        t.num_rows - pc.sum(q_ok).as_py(),
        t.num_rows - pc.sum(d_ok).as_py(),
    )
    return t.filter(ok)


def queries_without_positive(qrels: pa.Table) -> list[str]:
    """qids whose qrels are all relevance <= 0: kept for evaluation, skipped by training."""
    best = qrels.group_by("qid", use_threads=False).aggregate([("relevance", "max")])
    return best.filter(pc.less_equal(best["relevance_max"], 0))["qid"].to_pylist()


def check_corpus(corpus: Source) -> pa.Table:
    """The corpus table, checked: at least one document, unique docids, a title or text for each."""
    if corpus.table.num_rows == 0:
        raise InputError(corpus.path, None, "at least one document", "none")
    check_unique(corpus, ["docid"], "docid")
    check_nonempty(corpus, ["title", "text"], "a document with a non-empty title or text")
    return corpus.table.cast(CORPUS)


def check_on_unknown_id(on_unknown_id: str) -> None:
    if on_unknown_id not in ON_UNKNOWN_ID:
        raise ConfigError(f"dataset.on_unknown_id must be one of {ON_UNKNOWN_ID}, got {on_unknown_id!r}")


def check_queries(src: Source) -> None:
    check_unique(src, ["qid"], "qid")
    check_nonempty(src, ["text"], "a non-empty query text")


def build_split(
    queries: Source, qrels: Source, docids: pa.Array, split: str, on_unknown_id: str = "error",
    queries_checked: bool = False,
) -> tuple[pa.Table, pa.Table]:
    """One split's (queries, qrels), checked against the corpus's `docids`: the split's queries are
    those its qrels name. `queries_checked`: the query source was checked already (shared by splits)."""
    check_on_unknown_id(on_unknown_id)
    if not queries_checked:
        check_queries(queries)
    check_unique(qrels, ["qid", "docid"], "(qid, docid) pair")
    qtable = queries.table
    rels = resolve_qrels(qrels, qtable["qid"].combine_chunks(), docids, on_unknown_id, split)
    if rels.num_rows == 0:  # an empty split evaluates nothing: most likely the wrong file
        raise InputError(qrels.path, None, f"qrels for split {split} naming known queries and documents", "none")
    kept = qtable.filter(pc.is_in(qtable["qid"], value_set=rels["qid"].combine_chunks()))
    if kept.num_rows < qtable.num_rows:
        log.info(
            "split %s: %d of %d queries in %s have no qrels and are left out",
            split,
            qtable.num_rows - kept.num_rows,
            qtable.num_rows,
            queries.path,
        )
    if no_pos := queries_without_positive(rels):
        log.warning(
            "split %s: %d queries have no positive qrels (kept; training skips them), e.g. %s",
            split,
            len(no_pos),
            ", ".join(no_pos[:5]),
        )
    return kept.cast(QUERIES), rels.cast(QRELS)


def build_dataset(
    corpus: Source, queries: dict[str, Source], qrels: dict[str, Source], on_unknown_id: str = "error"
) -> Dataset:
    """Check parsed sources and assemble the Dataset; a split's queries are those its qrels name.

    `queries` maps each split to its query source (BEIR: the same one for every split).
    """
    check_on_unknown_id(on_unknown_id)
    ds = Dataset(corpus=check_corpus(corpus))
    for src in {id(s): s for s in queries.values()}.values():
        check_queries(src)
    docids = ds.corpus["docid"].combine_chunks()
    for split, rsrc in qrels.items():
        ds.queries[split], ds.qrels[split] = build_split(queries[split], rsrc, docids, split, on_unknown_id,
                                                         queries_checked=True)
    return ds
