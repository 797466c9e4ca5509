"""File helpers shared by the trainers: hyperparameters from JSON/YAML, Parquet columns with clear
errors, id -> row lookups, and token lists packed into one array."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bicross.errors import ConfigError, InputError


def load_hparams(text: str | None) -> dict[str, Any]:
    """A JSON object, or the path of a JSON (or YAML) file holding one."""
    if not text:
        return {}
    if os.path.isfile(text):
        raw = Path(text).read_text()
        if text.endswith((".yaml", ".yml")):
            import yaml

            return yaml.safe_load(raw) or {}
        return json.loads(raw)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"--hparams is neither a JSON object nor an existing file: {text[:80]!r} ({e})") from e
    if not isinstance(value, dict):
        raise ConfigError(f"--hparams must be a JSON object, got {type(value).__name__}")
    return value


def read_columns(path, columns: tuple[str, ...]) -> pa.Table:
    """Those columns of a Parquet file; a missing file or column is an InputError naming the file."""
    if not os.path.isfile(path):
        raise InputError(path, None, "an existing Parquet file", "no such file")
    names = pq.read_schema(path).names
    if any(c not in names for c in columns):
        raise InputError(path, None, f"columns {', '.join(columns)}", f"columns {names}")
    return pq.read_table(path, columns=list(columns))


def list_offsets(column: pa.ChunkedArray) -> tuple[pa.Array, np.ndarray]:
    """A list column as (flat values, offsets) with offsets from 0; null lists count as empty."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    lengths = pc.fill_null(pc.list_value_length(array), 0).to_numpy(zero_copy_only=False)
    offsets = np.zeros(len(array) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return array.flatten(), offsets


def rows_of(ids: pa.Array, universe: pa.Array, path, what: str, context: str) -> np.ndarray:
    """Row numbers of `ids` in `universe`; an id it lacks is an InputError naming it."""
    rows = pc.index_in(ids, value_set=universe)
    if rows.null_count:
        missing = [i for i, r in zip(ids.to_pylist(), rows.to_pylist(), strict=True) if r is None]
        raise InputError(path, None, f"{what} for every id in {context}",
                         f"none for {len(missing)} of them, e.g. {missing[:5]}")
    return rows.to_numpy(zero_copy_only=False).astype(np.int64)


class PackedTokens:
    """Token lists packed in one int32 array with offsets: compact for millions of documents."""

    def __init__(self, values: np.ndarray, offsets: np.ndarray):
        self.values = values
        self.offsets = offsets

    @classmethod
    def from_column(cls, column) -> PackedTokens:
        flat, offsets = list_offsets(column)
        return cls(flat.to_numpy(zero_copy_only=False).astype(np.int32, copy=False), offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> np.ndarray:
        return self.values[self.offsets[i] : self.offsets[i + 1]]

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)
