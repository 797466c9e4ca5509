"""One exception family for bad input: every message names the file, the line and what was expected."""

from __future__ import annotations


class BicrossError(Exception):
    """Base class of every error bicross raises on purpose."""


class InputError(BicrossError):
    """Bad input data: a malformed line, a duplicate or unknown id, an empty text, a missing file."""

    def __init__(self, path, line: int | None, expected: str, got: str | None = None):
        self.path = str(path)
        self.line = line
        self.expected = expected
        self.got = got
        where = self.path if line is None else f"{self.path}, line {line}"
        message = f"{where}: expected {expected}"
        if got is not None:
            message += f", got {got}"
        super().__init__(message)


class ConfigError(BicrossError):
    """A configuration value that cannot work (beyond what the JSON schema checks)."""
