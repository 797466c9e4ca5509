"""Sentence pairs for `task: sts` (Trans-Encoder): STS Benchmark files, score/sentence TSVs, and
named-column tables (`table`: CSV, TSV, JSONL, Parquet; bicross.data.table).

Every split is a PAIRS table (pair_id, text_a, text_b, gold float32; null gold = unlabelled):

- `dataset.splits` come from `dataset.format` / `dataset.path` / `dataset.files`;
- `dataset.eval_sets` add evaluation-only splits, each with its own format, path and files.

A pair's id is `<file, relative to the set's path>:<line>`: unique within a split, stable, and
independent of the score, so relabelling a file never changes an id (a Parquet table: `<file>:<row>`).
Texts are kept verbatim (stsb / pairs_tsv: quotes are literal; only the line end is removed; table:
quoting as the format defines it).

The gold-label firewall: training data is built only through `unlabelled` / `training_pairs`, which
drop the gold column before anything else happens, so the training set (content, order and ids) cannot
depend on a label.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from bicross.data import splits_of
from bicross.data.table import PAIR_FIELDS, column_map, quoting_of, read_table
from bicross.data.validate import Columns, Source, parse_score, read_lines, resolve_globs
from bicross.errors import ConfigError, InputError
from bicross.schemas import PAIR_TEXTS, PAIRS, write_table

log = logging.getLogger("bicross.data")

FORMATS = ("stsb", "pairs_tsv", "table")
STSB_SCORE_RANGE = (0.0, 5.0)
# A PAIRS table's split, kept in its schema metadata by load_pairs / write_pairs / unlabelled, so
# training_pairs can prefix ids without being told the split of each table.
SPLIT_KEY = b"bicross.split"
UNLABELLED = PAIR_TEXTS  # pair_id, text_a, text_b: a PAIRS table without its gold column

_RAW = pa.schema([("pair_id", pa.string()), ("text_a", pa.string()), ("text_b", pa.string()),
                  ("gold", pa.float64())])
_SPLIT_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_STSB_FIELDS = "genre, file, year, id, score, sentence1, sentence2"


@dataclass(frozen=True)
class _PairSet:
    split: str
    format: str
    root: str  # the configured path ("" = working directory)
    patterns: tuple[str, ...]  # globs relative to root
    what: str  # for error messages
    columns: dict | None = None  # format table: the file's column names -> text_a, text_b, score
    quoting: str | None = None  # format table: csv or none (bicross.data.table.QUOTING)


# --- configuration -----------------------------------------------------------------------------------

def _check_split_name(name: str, where: str) -> str:
    if not _SPLIT_NAME.match(name) or name in (".", ".."):
        raise ConfigError(f"{where}: a split name must match {_SPLIT_NAME.pattern} (it names a file); got {name!r}")
    return name


def _patterns(value, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not value or not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{where} must be a non-empty list of file names or globs, got {value!r}")
    return tuple(value)


def _pair_sets(cfg: dict) -> list[_PairSet]:
    """The configured splits then eval sets, each with its format, folder and file globs."""
    fmt = cfg.get("format")
    if fmt not in FORMATS:
        raise ConfigError(f"dataset.format must be one of {', '.join(FORMATS)} for task sts; got {fmt!r}")
    root = cfg.get("path") or ""
    splits = splits_of(cfg)
    columns = _columns(fmt, cfg.get("columns"), "dataset.columns")
    quoting = _quoting(fmt, cfg.get("quoting"), "dataset.quoting")
    files = cfg.get("files") or {}
    if not isinstance(files, Mapping):
        raise ConfigError(f"dataset.files must map split names to lists of files, got {files!r}")
    if extra := sorted(set(files) - set(splits)):
        raise ConfigError(f"dataset.files names splits that are not in dataset.splits {splits}: {extra}")
    sets: list[_PairSet] = []
    for split in splits:
        _check_split_name(split, "dataset.splits")
        if split in files:
            patterns = _patterns(files[split], f"dataset.files.{split}")
        elif fmt == "stsb":
            patterns = (f"sts-{split}.csv",)
        else:
            raise ConfigError(
                f"dataset.files.{split} must list the files of split {split} (globs relative to "
                f"dataset.path): format {fmt} has no default file names"
            )
        sets.append(_PairSet(split, fmt, root, patterns, f"the {fmt} file(s) of split {split}", columns, quoting))
    eval_sets = cfg.get("eval_sets") or {}
    if not isinstance(eval_sets, Mapping):
        raise ConfigError(f"dataset.eval_sets must map names to {{format, path, files}}, got {eval_sets!r}")
    for name, spec in eval_sets.items():
        name = _check_split_name(str(name), "dataset.eval_sets")
        if not isinstance(spec, Mapping):
            raise ConfigError(f"dataset.eval_sets.{name} must be {{format, path, files}}, got {spec!r}")
        efmt = spec.get("format")
        if efmt not in FORMATS:
            raise ConfigError(f"dataset.eval_sets.{name}.format must be one of {', '.join(FORMATS)}; got {efmt!r}")
        patterns = _patterns(spec.get("files"), f"dataset.eval_sets.{name}.files")
        ecolumns = _columns(efmt, spec.get("columns"), f"dataset.eval_sets.{name}.columns")
        equoting = _quoting(efmt, spec.get("quoting"), f"dataset.eval_sets.{name}.quoting")
        sets.append(_PairSet(name, efmt, spec.get("path") or "", patterns, f"the {efmt} file(s) of eval set {name}",
                             ecolumns, equoting))
    names = [s.split for s in sets]
    if dup := sorted({n for n in names if names.count(n) > 1}):
        raise ConfigError(f"split names must be unique across dataset.splits and dataset.eval_sets; repeated: {dup}")
    return sets


def _columns(fmt: str, value, where: str) -> dict | None:
    """The checked `columns:` map of a table set (None for the other formats, which have no names)."""
    if fmt == "table":
        return column_map(value, where, PAIR_FIELDS)
    if value:
        raise ConfigError(f"{where} names columns, which only format table has (this set is {fmt})")
    return None


def _quoting(fmt: str, value, where: str) -> str | None:
    if fmt == "table":
        return quoting_of(value, where)
    if value is not None:
        raise ConfigError(f"{where} applies to format table only (this set is {fmt})")
    return None


def _resolve(ps: _PairSet) -> list[str]:
    """The set's files relative to its root: globs expanded, sorted, deduplicated; none -> InputError."""
    return resolve_globs(ps.root, ps.patterns, ps.what)


def pair_splits(cfg: dict) -> list[str]:
    """Every split name: `dataset.splits`, then the `dataset.eval_sets` keys, in config order."""
    return [ps.split for ps in _pair_sets(cfg)]


def _sets_of(cfg: dict, split: str | None) -> list[_PairSet]:
    sets = _pair_sets(cfg)
    if split is None:
        return sets
    if chosen := [ps for ps in sets if ps.split == split]:
        return chosen
    raise ConfigError(f"no split or eval set named {split!r}; the dataset has {[ps.split for ps in sets]}")


def pair_files(cfg: dict, split: str | None = None) -> list[str]:
    """Every input file of every split and eval set, or of one `split` (globs expanded, sorted, deduplicated)."""
    return sorted({str(Path(ps.root) / rel) for ps in _sets_of(cfg, split) for rel in _resolve(ps)})


# --- parsing -----------------------------------------------------------------------------------------

def _check_source(src: Source, score_range: tuple[float, float] | None) -> None:
    """Vectorised: both sentences non-empty; labelled scores inside `score_range` (when given)."""
    t = src.table
    blank_a = pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(t["text_a"])), 0)
    blank_b = pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(t["text_b"])), 0)
    row = pc.index(pc.or_(blank_a, blank_b), True).as_py()
    if row >= 0:
        which = "sentence1" if blank_a[row].as_py() else "sentence2"
        raise src.error(row, "a non-empty sentence1 and sentence2", f"an empty {which}")
    if score_range is not None:
        lo, hi = score_range
        out = pc.fill_null(pc.or_(pc.less(t["gold"], lo), pc.greater(t["gold"], hi)), False)
        row = pc.index(out, True).as_py()
        if row >= 0:
            raise src.error(row, f"a score between {lo:g} and {hi:g}", f"{t['gold'][row].as_py()!r}")


def read_stsb(path, rel: str) -> Source:
    """STS Benchmark: 7 tab-separated fields (9 with the licence columns), no header, no quoting."""
    cols = Columns(_RAW, path)
    expected_score = "a numeric score (field 5) between 0 and 5"
    for n, line in read_lines(path, f"STS Benchmark rows ({_STSB_FIELDS}, tab-separated)"):
        fields = line.split("\t")
        if len(fields) not in (7, 9):
            raise InputError(
                path, n, f"7 tab-separated fields ({_STSB_FIELDS}), or 9 with the 2 licence fields",
                f"{len(fields)} fields",
            )
        gold = parse_score(fields[4], path, n, expected_score, allow_empty=False)
        cols.append(n, f"{rel}:{n}", fields[5], fields[6], gold)
    src = cols.source()
    _check_source(src, STSB_SCORE_RANGE)
    return src


def read_pairs_tsv(path, rel: str) -> Source:
    """score TAB sentence1 TAB sentence2 per line; an empty score is an unlabelled pair (null gold)."""
    cols = Columns(_RAW, path)
    expected_score = "a numeric score (or an empty one for an unlabelled pair) in field 1"
    for n, line in read_lines(path, "sentence pairs: score TAB sentence1 TAB sentence2"):
        fields = line.split("\t")
        if len(fields) != 3:
            raise InputError(path, n, "3 tab-separated fields (score, sentence1, sentence2)", f"{len(fields)} fields")
        gold = parse_score(fields[0], path, n, expected_score, allow_empty=True)
        cols.append(n, f"{rel}:{n}", fields[1], fields[2], gold)
    src = cols.source()
    _check_source(src, None)
    return src


def read_pairs_table(path, rel: str, columns: dict, quoting: str = "csv") -> Source:
    """A `table` file (bicross.data.table: CSV, TSV, JSONL or Parquet, named columns): text_a, text_b and
    an optional score (a missing or empty one: an unlabelled pair). Ids are `<rel>:<line>` (Parquet:
    `<rel>:<row>`, counted from 0)."""
    src = read_table(path, PAIR_FIELDS, columns, quoting)
    t = src.table
    ids = pa.array([f"{rel}:{src.line(i)}" for i in range(t.num_rows)], pa.string())
    table = pa.Table.from_arrays([ids, t["text_a"], t["text_b"], t["score"]], schema=_RAW)
    out = Source(table, src.path, src.lines, src.unit)
    _check_source(out, None)
    return out


def _read(ps: _PairSet, rel: str) -> Source:
    path = Path(ps.root) / rel
    if ps.format == "table":
        return read_pairs_table(path, rel, ps.columns or {}, ps.quoting or "csv")
    return {"stsb": read_stsb, "pairs_tsv": read_pairs_tsv}[ps.format](path, rel)


def _split_schema(split: str) -> pa.Schema:
    return PAIRS.with_metadata({SPLIT_KEY: split.encode()})


def _load_set(ps: _PairSet, labelled: bool = False) -> pa.Table:
    rels = _resolve(ps)
    tables = [_read(ps, rel).table for rel in rels]
    table = pa.concat_tables(tables).cast(_split_schema(ps.split)).combine_chunks()
    files = ", ".join(str(Path(ps.root) / r) for r in rels)
    if table.num_rows == 0:
        raise InputError(files, None, f"at least one sentence pair in {ps.what}", "none")
    n_unlabelled = table["gold"].null_count
    if labelled and table.num_rows - n_unlabelled < 2:  # a correlation needs two gold scores
        n = table.num_rows - n_unlabelled
        raise InputError(files, None, f"gold scores for split {ps.split}: it is evaluated (evaluate.splits, "
                         "validation or sts.select_split), so at least 2 labelled pairs",
                         "no pair has a score (every score field is empty)" if n == 0 else f"{n} labelled pair")
    log.info("split %s: %d pairs from %d file(s) (%d unlabelled)", ps.split, table.num_rows, len(rels), n_unlabelled)
    return table


def load_pairs(cfg: dict) -> dict[str, pa.Table]:
    """split -> PAIRS table (pair_id, text_a, text_b, gold; null gold = unlabelled), in pair_splits order.

    Each table's schema metadata records its split (SPLIT_KEY); PAIRS comparisons ignore metadata.
    """
    return {ps.split: _load_set(ps) for ps in _pair_sets(cfg)}


def pair_set_spec(cfg: dict, split: str) -> dict:
    """What one split is read from (split, format, root, patterns), as plain data. The workflow prepares
    each split in its own job with this as its parameter, so adding an evaluation set changes no other
    split's job: the training pairs, and everything trained on them, stay as they are."""
    (ps,) = _sets_of(cfg, split)
    spec = {**asdict(ps), "patterns": list(ps.patterns)}
    if ps.format != "table":  # the spec, a job parameter, stays as it was before tables
        del spec["columns"], spec["quoting"]
    return spec


def load_pair_set(spec: dict, labelled: bool = False) -> pa.Table:
    """The PAIRS table of one split from its `pair_set_spec`. `labelled`: the split is read for its gold
    scores (evaluated, validated on, or the supervised baseline's training set), so at least 2 of its
    pairs must have one; a training-only split may be all unlabelled."""
    return _load_set(_PairSet(**{**spec, "patterns": tuple(spec["patterns"])}), labelled)


def write_pairs(tables: dict[str, pa.Table], outdir) -> None:
    """Write <outdir>/<split>.parquet for each split, atomically, with the split in the schema metadata."""
    outdir = Path(outdir)
    for split, table in tables.items():
        _check_split_name(split, "write_pairs")
        write_table(table, outdir / f"{split}.parquet", _split_schema(split))


# --- labels: evaluation keeps them, training never sees them ------------------------------------------

def labelled(table: pa.Table) -> pa.Table:
    """Only the pairs with a gold score (what evaluation correlates against)."""
    return table.filter(pc.is_valid(table["gold"]))


def _split_of(table: pa.Table) -> str | None:
    meta = table.schema.metadata or {}
    return meta[SPLIT_KEY].decode() if SPLIT_KEY in meta else None


def unlabelled(table: pa.Table) -> pa.Table:
    """pair_id, text_a, text_b only: the gold-label firewall (training data is built only from this)."""
    if missing := [c for c in UNLABELLED.names if c not in table.column_names]:
        raise ValueError(f"a sentence-pair table needs columns {UNLABELLED.names}; missing {missing}")
    split = _split_of(table)
    schema = UNLABELLED if split is None else UNLABELLED.with_metadata({SPLIT_KEY: split.encode()})
    return table.select(UNLABELLED.names).cast(schema)


def training_pairs(
    tables: Sequence[pa.Table] | Mapping[str, pa.Table], splits: Sequence[str] | None = None
) -> pa.Table:
    """The unlabelled pairs of several splits, for training: UNLABELLED schema, deterministic order.

    Tables are taken in the given order, rows in file order; a repeated exact (text_a, text_b) pair
    keeps its first occurrence only. Ids become `<split>:<pair_id>` (split names hold no ':'), so they
    stay unique across splits. A table's split is `splits[i]`, else the mapping key, else the split
    recorded in its schema metadata by load_pairs / write_pairs (read back from Parquet too). Gold
    scores are dropped first (see `unlabelled`): the result never depends on them.
    """
    if isinstance(tables, Mapping):
        names = list(tables) if splits is None else list(splits)
        tables = list(tables.values())
    else:
        tables = list(tables)
        names = list(splits) if splits is not None else [_split_of(t) for t in tables]
    if len(names) != len(tables):
        raise ValueError(f"training_pairs: {len(tables)} tables but {len(names)} split names")
    parts = []
    for i, (name, table) in enumerate(zip(names, tables, strict=True)):
        if name is None:
            raise ValueError(
                f"training_pairs: table {i} records no split (schema metadata {SPLIT_KEY!r}); pass splits="
            )
        _check_split_name(name, "training_pairs")
        t = unlabelled(table).cast(UNLABELLED)
        ids = pc.utf8_replace_slice(t["pair_id"], 0, 0, f"{name}:")
        parts.append(t.set_column(0, "pair_id", ids))
    if not parts:
        return UNLABELLED.empty_table()
    combined = pa.concat_tables(parts)
    combined = combined.append_column("_row", pa.array(range(combined.num_rows), pa.int64()))
    first = combined.group_by(["text_a", "text_b"], use_threads=False).aggregate([("_row", "min")])["_row_min"]
    keep = pc.take(first, pc.sort_indices(first))
    out = combined.take(keep).drop_columns(["_row"]).combine_chunks()
    if dropped := combined.num_rows - out.num_rows:
        log.info("training pairs: dropped %d exact duplicate (text_a, text_b) pairs of %d", dropped, combined.num_rows)
    if out.group_by("pair_id", use_threads=False).aggregate([]).num_rows != out.num_rows:
        raise ValueError(f"training_pairs: pair ids repeat (the same split given twice?): splits {names}")
    return out
