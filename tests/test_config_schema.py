"""The config check's messages: one line per problem, an unknown key with its place and closest key."""

from __future__ import annotations

import pytest
import yaml
from conftest import REPO

from bicross.config_schema import check_config, problems
from bicross.errors import ConfigError

SCHEMA_PATH = REPO / "workflow" / "schemas" / "config.schema.yaml"
SCHEMA = yaml.safe_load(SCHEMA_PATH.read_text())


@pytest.mark.parametrize(
    ("config", "line"),
    [
        ({"iteratons": 2}, "config key 'iteratons' at the top level is not known; did you mean 'iterations'?"),
        ({"encode": {"batchsize": 3}}, "config key 'batchsize' in encode is not known; did you mean 'batch_size'?"),
        ({"dataset": {"eval_sets": {"x": {"format": "stsb", "files": ["a"], "pth": "b"}}}},
         "config key 'pth' in dataset.eval_sets.x is not known; did you mean 'path'?"),
        ({"retrieve": {"depth": "many"}}, "config retrieve.depth: 'many' is not of type 'integer'"),
        ({"task": "rerank"}, "config task: 'rerank' is not one of ['retrieval', 'sts']"),
    ],
)
def test_one_line_per_problem(config, line):
    assert problems(config, SCHEMA) == [line]


def test_an_unknown_key_without_a_close_one_lists_the_keys_there():
    (line,) = problems({"evaluate": {"zzz": 1}}, SCHEMA)
    assert line.startswith("config key 'zzz' in evaluate is not known (known there: ")
    assert "splits" in line and "\n" not in line


def test_valid_configs_pass(tmp_path):
    for path in [REPO / "config" / "config.yaml", *sorted((REPO / "config" / "examples").glob("*.yaml"))]:
        assert problems(yaml.safe_load(path.read_text()), SCHEMA) == [], path
    with pytest.raises(ConfigError) as err:
        check_config({"iteratons": 2, "seed": "x"}, SCHEMA_PATH)
    assert str(err.value).splitlines() == [
        "config key 'iteratons' at the top level is not known; did you mean 'iterations'?",
        "config seed: 'x' is not of type 'integer'"]
