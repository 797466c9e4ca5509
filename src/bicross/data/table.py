"""The `table` input format: named columns in TSV or CSV with a header row, JSONL, or Parquet.

A file's extension names its format: `.csv` (comma-separated) and `.tsv` (tab-separated) are read by
Python's csv module with a header row and standard quoting (a field in double quotes may hold the
delimiter, a newline, and `""` for a quote; a quote inside an unquoted field is text; `quoting: none`
reads every quote as text, as in TSVs written without quoting), `.jsonl` holds
one JSON object per line, `.parquet` is read with pyarrow. A column is found by name: the `columns:`
map (the file's name -> the project's) first, else the project's own name, else the name of the
MTEB / Hugging Face datasets layout (corpus `_id, title, text`, queries `_id, text`, qrels `query-id,
corpus-id, score`, sentence pairs `sentence1, sentence2, score`), compared exactly, then ignoring case.
Other columns are ignored.

Every row is checked as the other loaders check theirs, and an error names the file and the line
(a Parquet file: the row, counted from 0) and what was expected; a missing column is named together
with the columns the file has, a Parquet column of the wrong type with its type.
"""

from __future__ import annotations

import csv
import math
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bicross.data import Dataset, splits_of
from bicross.data.validate import (
    Columns,
    Source,
    build_dataset,
    concat_sources,
    json_rows,
    numbered_lines,
    parse_relevance,
    parse_score,
    resolve_globs,
)
from bicross.errors import ConfigError, InputError


@dataclass(frozen=True)
class Field:
    """A column the project reads: its name, what its values are, and the names it is found by."""

    name: str
    kind: str  # id (string or integer, not empty), text (string), int (int32 relevance), number (score)
    required: bool = True
    aliases: tuple[str, ...] = ()  # names found with no map besides `name` (the MTEB / HF layout's)

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


CORPUS_FIELDS = (Field("docid", "id", aliases=("_id",)), Field("title", "text", required=False),
                 Field("text", "text"))
QUERY_FIELDS = (Field("qid", "id", aliases=("_id",)), Field("text", "text"))
QRELS_FIELDS = (Field("qid", "id", aliases=("query-id",)), Field("docid", "id", aliases=("corpus-id",)),
                Field("relevance", "int", aliases=("score",)))
PAIR_FIELDS = (Field("text_a", "text", aliases=("sentence1",)), Field("text_b", "text", aliases=("sentence2",)),
               Field("score", "number", required=False))
KINDS = {"corpus": CORPUS_FIELDS, "queries": QUERY_FIELDS, "qrels": QRELS_FIELDS}
# retrieval files when the config names none: the MTEB / Hugging Face layout (shards `<name>-00000-of-00001`)
DEFAULT_FILES = {"corpus": "corpus/*.parquet", "queries": "queries/*.parquet", "qrels": "qrels/{split}-*.parquet"}
SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".parquet": "parquet"}
_ARROW = {"id": pa.string(), "text": pa.string(), "int": pa.int32(), "number": pa.float64()}
_INT32 = (-(2**31), 2**31 - 1)
QUOTING = {"csv": csv.QUOTE_MINIMAL, "none": csv.QUOTE_NONE}  # how CSV / TSV fields are quoted


def schema_of(fields: Sequence[Field]) -> pa.Schema:
    return pa.schema([(f.name, _ARROW[f.kind]) for f in fields])


# --- configuration -----------------------------------------------------------------------------------

def column_map(value, where: str, fields: Sequence[Field]) -> dict[str, str]:
    """A `columns:` map, checked: the file's column names -> the project's, each project name once."""
    known = [f.name for f in fields]
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ConfigError(f"{where} must map the file's column names to the project's ({', '.join(known)}), "
                          f"got {value!r}")
    if unknown := sorted({v for v in value.values() if v not in known}):
        raise ConfigError(f"{where} maps columns to {unknown}; the project's names here are {known}")
    targets = list(value.values())
    if repeated := sorted({v for v in targets if targets.count(v) > 1}):
        raise ConfigError(f"{where} maps more than one column to {repeated}")
    return dict(value)


def quoting_of(value, where: str) -> str:
    """`quoting:` of a table: csv (the default: double quotes as CSV defines them) or none."""
    if value is None:
        return "csv"
    if value not in QUOTING:
        raise ConfigError(f"{where} must be one of {', '.join(QUOTING)}, got {value!r}")
    return value


def retrieval_columns(cfg: dict) -> dict[str, dict[str, str]]:
    """`dataset.columns` of a retrieval table: {corpus: {...}, queries: {...}, qrels: {...}}, each checked."""
    value = cfg.get("columns") or {}
    if not isinstance(value, Mapping) or set(value) - set(KINDS):
        raise ConfigError("dataset.columns (format table, task retrieval) must be {corpus: {...}, queries: "
                          "{...}, qrels: {...}}, each mapping the file's column names to the project's; "
                          f"got {value!r}")
    return {kind: column_map(value.get(kind), f"dataset.columns.{kind}", fields) for kind, fields in KINDS.items()}


def file_patterns(cfg: dict, kind: str, split: str | None = None) -> tuple[str, ...]:
    """The globs of a retrieval kind (corpus, queries, qrels) for a split: `dataset.<kind>` (one glob or a
    list; queries and qrels may also map each split to its own), `{split}` standing for the split's name;
    the MTEB / HF layout when not set."""
    value = cfg.get(kind) or DEFAULT_FILES[kind]
    if isinstance(value, Mapping) and kind != "corpus":
        if split not in value:
            raise ConfigError(f"dataset.{kind} maps splits to files but names none for split {split!r}")
        value = value[split]
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"dataset.{kind} (format table) must be a file name or glob, or a list of them"
                          + ("" if kind == "corpus" else ", or a mapping of splits to them") + f"; got {value!r}")
    return tuple(v.replace("{split}", split) if split else v for v in value)


def _files(cfg: dict, kind: str, split: str | None) -> list[str]:
    patterns = file_patterns(cfg, kind, split)
    what = f"the {kind} file(s) of format table ({', '.join(patterns)})"
    return [str(Path(cfg.get("path") or "") / rel) for rel in resolve_globs(cfg.get("path") or "", patterns, what)]


def table_files(cfg: dict) -> list[str]:
    """Every file a retrieval table dataset reads."""
    files = set(corpus_files(cfg))
    for split in splits_of(cfg):
        files.update(split_input_files(cfg, split))
    return sorted(files)


def load_table(cfg: dict) -> Dataset:
    """The retrieval Dataset of `dataset.format: table` (see the module docstring), checked like every
    loader's (bicross.data.validate). Splits that read the same query files share one query table."""
    retrieval_columns(cfg)  # the config is checked before any file is read
    quoting_of(cfg.get("quoting"), "dataset.quoting")
    splits, cache = splits_of(cfg), {}
    corpus = corpus_source(cfg, cache)
    sources = {s: split_sources(cfg, s, cache) for s in splits}
    return build_dataset(corpus, {s: q for s, (q, _) in sources.items()}, {s: r for s, (_, r) in sources.items()},
                         cfg.get("on_unknown_id", "error"))


def _source(cfg: dict, kind: str, split: str | None, cache: dict) -> Source:
    """The rows of a kind's files for a split, read once per `cache` (splits may share query files)."""
    columns = retrieval_columns(cfg)[kind]
    quoting = quoting_of(cfg.get("quoting"), "dataset.quoting")
    files = _files(cfg, kind, split)
    key = (kind, *files)
    if key not in cache:
        cache[key] = concat_sources([read_table(f, KINDS[kind], columns, quoting) for f in files])
    return cache[key]


def corpus_source(cfg: dict, cache: dict | None = None) -> Source:
    return _source(cfg, "corpus", None, {} if cache is None else cache)


def split_sources(cfg: dict, split: str, cache: dict | None = None) -> tuple[Source, Source]:
    """One split's (queries, qrels) from the split's own files; the corpus is not read."""
    cache = {} if cache is None else cache
    return _source(cfg, "queries", split, cache), _source(cfg, "qrels", split, cache)


def corpus_files(cfg: dict) -> list[str]:
    """The corpus files of a retrieval table dataset (the workflow's inputs of prepare_corpus)."""
    return _files(cfg, "corpus", None)


def split_input_files(cfg: dict, split: str) -> list[str]:
    """One split's query and qrels files (the workflow's inputs of prepare_split)."""
    return sorted(set(_files(cfg, "queries", split) + _files(cfg, "qrels", split)))


# --- reading -----------------------------------------------------------------------------------------

def read_table(path, fields: Sequence[Field], columns: Mapping[str, str], quoting: str = "csv") -> Source:
    """The fields' columns of one file (format by extension) as a Source in `schema_of(fields)`;
    `quoting` (QUOTING) applies to CSV and TSV."""
    path = Path(path)
    fmt = SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise InputError(path, None, f"a file ending in {', '.join(SUFFIXES)} (the extension names its format)",
                         repr(path.suffix or "no extension"))
    if fmt == "parquet":
        return _read_parquet(path, fields, columns)
    if fmt == "jsonl":
        return _read_jsonl(path, fields, columns)
    return _read_delimited(path, fields, columns, "\t" if fmt == "tsv" else ",", quoting)


def _find(have: Sequence[str], names: Sequence[str]) -> str | None:
    """The first of `names` that `have` holds: exactly, else the only one equal but for case."""
    for name in names:
        if name in have:
            return name
    for name in names:
        same = [h for h in have if h.lower() == name.lower()]
        if len(same) == 1:
            return same[0]
    return None


def _chosen(have: Sequence[str], fields, columns: Mapping[str, str], path, line: int | None, what: str):
    """project name -> the file's column (None: an optional column the file does not have)."""
    mapped = {project: name for name, project in columns.items()}
    unmapped = [h for h in have if h not in columns]  # a column the map gives one field is no other's default
    chosen = {}
    for f in fields:
        if f.name in mapped:
            name = mapped[f.name] if mapped[f.name] in have else None
            expected = f"a {what} {mapped[f.name]!r} (the columns map names it for {f.name})"
        else:
            name = _find(unmapped, f.names)
            expected = (f"a {what} named {' or '.join(map(repr, f.names))} for {f.name} (or a columns map "
                        f"naming yours)")
        if name is None and (f.required or f.name in mapped):
            raise InputError(path, line, expected, f"{what}s {list(have)}")
        chosen[f.name] = name
    return chosen


def _absent(f: Field):
    return "" if f.kind == "text" else None


def _from_text(f: Field, value: str, column: str, path, n: int):
    """A CSV / TSV field as the project's value."""
    if f.kind == "id":
        if not value.strip():
            raise InputError(path, n, f"a non-empty {column!r} ({f.name})", repr(value))
        return value.strip()
    if f.kind == "int":
        return parse_relevance(value, path, n, f"an integer {column!r} ({f.name})")
    if f.kind == "number":
        return parse_score(value, path, n, f"a number in {column!r} (or an empty field: no score)", allow_empty=True)
    return value


def _records(path, delimiter: str, what: str, quoting: str) -> Iterator[tuple[int, list[str]]]:
    """(first line, fields) of each non-blank record; a quoted field may span lines."""
    lines = (line for _, line in numbered_lines(path, what))
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # documents longer than csv's 128 KiB default
    reader = csv.reader(lines, delimiter=delimiter, quotechar='"', doublequote=True, strict=True,
                        quoting=QUOTING[quoting])
    start = 1
    while True:
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            raise InputError(path, start, "a well-formed record (a quoted field ends with a quote, then the "
                             "delimiter or the line end; a quote inside it is doubled)", str(e)) from None
        if record and (len(record) > 1 or record[0].strip()):
            yield start, record
        start = reader.line_num + 1


def _read_delimited(path, fields, columns, delimiter: str, quoting: str) -> Source:
    what = f"{'tab' if delimiter == chr(9) else 'comma'}-separated values with a header row"
    records = _records(path, delimiter, what, quoting)
    first = next(records, None)
    if first is None:
        raise InputError(path, None, f"a header row naming the columns ({what})", "an empty file")
    header_line, header = first[0], [h.strip() for h in first[1]]
    chosen = _chosen(header, fields, columns, path, header_line, "column")
    for name in filter(None, chosen.values()):
        if header.count(name) > 1:
            raise InputError(path, header_line, "column names that appear once in the header",
                             f"{name!r} {header.count(name)} times")
    index = [(f, header.index(chosen[f.name]) if chosen[f.name] else None) for f in fields]
    cols = Columns(schema_of(fields), path)
    for n, record in records:
        if len(record) != len(header):
            raise InputError(path, n, f"{len(header)} fields, one per column of the header ({what})",
                             f"{len(record)} fields")
        cols.append(n, *(_absent(f) if i is None else _from_text(f, record[i], header[i], path, n) for f, i in index))
    return cols.source()


def _from_json(f: Field, value, key: str, path, n: int):
    """A JSON value as the project's value (ids may be strings or integers; a null optional is absent)."""
    if value is None and not f.required:
        return _absent(f)
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if f.kind == "id" and (isinstance(value, str) and value.strip() or number and isinstance(value, int)):
        return str(value)
    if f.kind == "text" and isinstance(value, str):
        return value
    if f.kind == "int" and number and isinstance(value, int) and _INT32[0] <= value <= _INT32[1]:
        return value
    if f.kind == "number" and number and math.isfinite(value):
        return float(value)
    expected = {"id": "a non-empty string or an integer", "text": "a string", "int": "an integer that fits in int32",
                "number": "a finite number" + ("" if f.required else " or null")}[f.kind]
    raise InputError(path, n, f"{expected} in {key!r} ({f.name})", repr(value)[:80])


def _read_jsonl(path, fields, columns) -> Source:
    cols = Columns(schema_of(fields), path)
    keys = None
    for n, obj in json_rows(path, "one JSON object per line"):
        if keys is None:  # required keys are found in the first object; an optional one may come later
            found = _chosen(list(obj), [f for f in fields if f.required], columns, path, n, "key")
            keys = {f: found.get(f.name) or columns_name(f, columns) for f in fields}
        values = []
        for f, key in keys.items():
            if key not in obj:
                if f.required:
                    raise InputError(path, n, f"a key {key!r} ({f.name})", f"keys {list(obj)}")
                values.append(_absent(f))
            else:
                values.append(_from_json(f, obj[key], key, path, n))
        cols.append(n, *values)
    return cols.source()


def columns_name(f: Field, columns: Mapping[str, str]) -> str:
    """The file's name of a field: the one the map gives it, else the project's."""
    return next((name for name, project in columns.items() if project == f.name), f.name)


_PARQUET_TYPES = {"id": "strings or integers", "text": "strings", "int": "integers", "number": "numbers"}


def _is_string(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or getattr(pa.types, "is_string_view", bool)(t)


def _parquet_column(f: Field, col: pa.ChunkedArray, name: str, path) -> pa.ChunkedArray:
    """A Parquet column as the project's type; a wrong type, a null, an empty id or an out-of-range
    value raises naming the column (and the row)."""
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    t = col.type
    fits = {"id": _is_string(t) or pa.types.is_integer(t), "text": _is_string(t), "int": pa.types.is_integer(t),
            "number": pa.types.is_integer(t) or pa.types.is_floating(t)}[f.kind]
    if not fits:
        raise InputError(path, None, f"a column {name!r} ({f.name}) of {_PARQUET_TYPES[f.kind]}", f"type {t}")

    def first(mask, expected: str, got) -> None:
        row = pc.index(pc.fill_null(mask, False), True).as_py()
        if row >= 0:
            raise InputError(path, row, expected, got(row), unit="row")

    if f.required:
        first(pc.is_null(col), f"a value in column {name!r} ({f.name})", lambda _: "null")
    if f.kind == "id":
        col = col.cast(pa.string())
        first(pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(col)), 0), f"a non-empty {name!r} ({f.name})",
              lambda row: repr(col[row].as_py()))
    elif f.kind == "text":
        col = pc.fill_null(col.cast(pa.string()), "")
    elif f.kind == "int":
        first(pc.or_(pc.less(col, _INT32[0]), pc.greater(col, _INT32[1])),
              f"a {name!r} ({f.name}) that fits in int32", lambda row: str(col[row].as_py()))
        col = col.cast(pa.int32())
    else:
        col = col.cast(pa.float64())
        first(pc.invert(pc.is_finite(col)), f"a finite number in {name!r} ({f.name})",
              lambda row: str(col[row].as_py()))
    return col


def _read_parquet(path, fields, columns) -> Source:
    try:
        file = pq.ParquetFile(path)
    except FileNotFoundError:
        raise InputError(path, None, "a Parquet file", "no such file") from None
    except (OSError, pa.ArrowException) as e:
        raise InputError(path, None, "a Parquet file", str(e)) from None
    have = file.schema_arrow.names
    chosen = _chosen(have, fields, columns, path, None, "column")
    for name in filter(None, chosen.values()):
        if have.count(name) > 1:
            raise InputError(path, None, "column names that appear once", f"{name!r} {have.count(name)} times")
    table = file.read(columns=sorted(set(filter(None, chosen.values()))))
    n = table.num_rows
    arrays = [pa.chunked_array([pa.array([_absent(f)] * n, _ARROW[f.kind])]) if chosen[f.name] is None
              else _parquet_column(f, table.column(chosen[f.name]), chosen[f.name], path) for f in fields]
    return Source(pa.Table.from_arrays(arrays, schema=schema_of(fields)), str(path), range(n), unit="row")
