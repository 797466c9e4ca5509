"""Check the workflow config against its JSON schema, with one short line per problem.

Snakemake's `validate` (which then fills in the schema's defaults) reports a problem together with the
whole schema and config, about a thousand lines for a mistyped key. This check runs first and says
`config <where>: <what>`; an unknown key comes with where it sits and the closest known key.
"""

from __future__ import annotations

import difflib
import os
import re
from typing import Any

import yaml

from bicross.errors import ConfigError

_MAX_MESSAGE = 200  # characters of jsonschema's message (it can quote a large value)


def _where(path) -> str:
    return ".".join(str(p) for p in path)


def _unknown_keys(error) -> list[str]:
    known = set(error.schema.get("properties", {}))
    patterns = [re.compile(p) for p in error.schema.get("patternProperties", {})]
    return sorted(k for k in error.instance if k not in known and not any(p.search(k) for p in patterns))


def _unknown_key_message(key: str, path, known: list[str]) -> str:
    where = _where(path)
    place = f"in {where}" if where else "at the top level"
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if close:
        return f"config key {key!r} {place} is not known; did you mean {close[0]!r}?"
    return f"config key {key!r} {place} is not known (known there: {', '.join(sorted(known))})"


def problems(config: Any, schema: dict) -> list[str]:
    """Every way `config` breaks `schema`, one line each, in config order (empty when it is valid)."""
    from jsonschema.validators import validator_for

    validator = validator_for(schema)(schema)
    lines: list[str] = []
    for error in sorted(validator.iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path]):
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            known = list(error.schema.get("properties", {}))
            lines += [_unknown_key_message(key, error.absolute_path, known) for key in _unknown_keys(error)]
            continue
        message = error.message
        if len(message) > _MAX_MESSAGE:
            message = message[:_MAX_MESSAGE] + " ..."
        lines.append(f"config {_where(error.absolute_path) or '(top level)'}: {message}")
    return list(dict.fromkeys(lines))


def check_config(config: Any, schema_path: str | os.PathLike) -> None:
    """Raise a ConfigError listing `problems` (one line each) when the config breaks the schema."""
    with open(schema_path) as f:
        schema = yaml.safe_load(f)
    found = problems(config, schema)
    if found:
        raise ConfigError("\n".join(found))
