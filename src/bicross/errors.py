"""One exception family for bad input: every message names the file, the line and what was expected."""

from __future__ import annotations


class BicrossError(Exception):
    """Base class of every error bicross raises on purpose."""


class InputError(BicrossError):
    """Bad input data: a malformed line, a duplicate or unknown id, an empty text, a missing file.

    `line` is a 1-based line of a text file, or with `unit="row"` a Parquet row counted from 0 (as
    `table.slice(row, 1)` and pandas' `iloc` count them).
    """

    def __init__(self, path, line: int | None, expected: str, got: str | None = None, unit: str = "line"):
        self.path = str(path)
        self.line = line
        self.unit = unit
        self.expected = expected
        self.got = got
        where = self.path if line is None else f"{self.path}, {place(line, unit)}"
        message = f"{where}: expected {expected}"
        if got is not None:
            message += f", got {got}"
        super().__init__(message)


def place(line: int, unit: str = "line") -> str:
    """`line 12`, or `row 11 (from 0)` for a Parquet row."""
    return f"row {line} (from 0)" if unit == "row" else f"{unit} {line}"


class ConfigError(BicrossError):
    """A configuration value that cannot work (beyond what the JSON schema checks)."""
