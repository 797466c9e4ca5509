"""The workflow config at one iteration: `overrides: {section: {key: [value of iteration 1, 2, ...]}}`
replaces a key's value per iteration (the last value holds for later iterations)."""

from __future__ import annotations

from typing import Any


def for_iteration(config: dict[str, Any], section: str, key: str, k: int) -> Any:
    """A config value for iteration k, taking a per-iteration override list into account."""
    values = config["overrides"].get(section, {}).get(key)
    if values is None:
        return config[section][key]
    return values[min(int(k), len(values)) - 1]


def sections_at(config: dict[str, Any], k: int) -> dict[str, dict[str, Any]]:
    """Every section of the config (the dict-valued keys) with iteration k's overrides applied."""
    return {name: {key: for_iteration(config, name, key, k) for key in section}
            for name, section in config.items() if isinstance(section, dict) and name != "overrides"}


def check_overrides(config: dict[str, Any], per_iteration: set[tuple[str, str]]) -> None:
    """Every override names a key of its section that is read per iteration (`per_iteration`: (section,
    key) pairs); an override of a key the whole run reads once would be silently ignored."""
    for section, keys in config["overrides"].items():
        unknown = sorted(set(keys) - set(config.get(section) or {}))
        if unknown:
            raise ValueError(f"config overrides.{section} names {unknown}, not keys of {section}")
        once = sorted(key for key in keys if (section, key) not in per_iteration)
        if once:
            allowed = sorted(key for name, key in per_iteration if name == section)
            raise ValueError(f"config overrides.{section} names {once}: read once for the whole run, not per "
                             f"iteration; keys of {section} that take a value per iteration: {allowed or 'none'}")
