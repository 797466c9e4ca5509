"""The training layer: one entry point, one dataclass of hyperparameters per recipe whose defaults are
the schema's, and the workflow config turned into a recipe's hyperparameters in one place."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import asdict, fields

import pytest
import yaml
from conftest import REPO

from bicross.errors import ConfigError
from bicross.train import RECIPES, ROLES, hparams_for, recipe, recipe_for
from bicross.training import TrainConfig


def schema_config() -> dict:
    """The config a user gets from the schema's defaults alone."""
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())["properties"]
    config = {name: {k: v["default"] for k, v in spec.get("properties", {}).items() if "default" in v}
              for name, spec in schema.items() if spec.get("type") == "object"}
    config.update(seed=schema["seed"]["default"], overrides={})
    return config


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_the_schema_defaults_are_the_recipe_defaults(name):
    """What a user gets from the workflow and from `python -m bicross.train` alike: every value the
    recipe takes from the config's sections equals its dataclass default (they cannot drift)."""
    module = recipe(name)
    from_schema = hparams_for(schema_config(), name, 1, model="m")
    defaults = asdict(module.Hparams())
    taken = set(from_schema) - {"model", "seed"}
    assert taken, name
    assert {k: from_schema[k] for k in taken} == {k: defaults[k] for k in taken}
    assert issubclass(module.Hparams, TrainConfig)
    assert all(f.metadata.get("help") for f in fields(module.Hparams)), "every setting has a one-line help"


def test_each_role_of_each_task_has_a_recipe():
    assert {recipe_for(task, role) for task in ROLES for role in ("cross", "bi")} == set(RECIPES)


def test_hparams_for_applies_overrides_and_seeds():
    config = schema_config()
    config["overrides"] = {"cross_encoder": {"learning_rate": [5e-5, 3e-5]}}
    assert hparams_for(config, "cross", 1, model="m")["learning_rate"] == 5e-5
    assert hparams_for(config, "cross", 3, model="m")["learning_rate"] == 3e-5  # the last value holds on
    seed = config["seed"]
    assert hparams_for(config, "cross", 2, model="m")["seed"] == seed + 2
    assert hparams_for(config, "distill", 2, model="m")["seed"] == seed + 1002
    assert hparams_for(config, "sts-cross", 2, model="m", family="_b")["seed"] == seed + 502
    assert hparams_for(config, "sts-bi", 2, model="m", family="_b")["seed"] == seed + 1502
    assert hparams_for(config, "distill", 1, model="init")["model"] == "init"


def test_sts_bi_label_weights_follow_bi_self_weight_and_families():
    config = schema_config()
    assert hparams_for(config, "sts-bi", 1, model="m")["label_weights"] is None  # w = 0: equal weights
    config["sts"]["bi_self_weight"] = 0.75
    assert hparams_for(config, "sts-bi", 1, model="m")["label_weights"] == [0.25, 0.75]
    config["sts"]["mutual"] = {"bi_model": "b", "cross_model": "b"}
    assert hparams_for(config, "sts-bi", 1, model="m")["label_weights"] == [0.125, 0.125, 0.75]
    # sts.mutual.cross_weights: the cross-encoders' share 1 - w split by family weight, normalised
    config["sts"]["mutual"]["cross_weights"] = [0, 2]
    assert hparams_for(config, "sts-bi", 1, model="m")["label_weights"] == [0.0, 0.25, 0.75]
    config["sts"]["bi_self_weight"] = 0.0
    assert hparams_for(config, "sts-bi", 2, model="m", family="_b")["label_weights"] == [0.0, 1.0]
    config["sts"]["mutual"]["cross_weights"] = [1, 3]
    assert hparams_for(config, "sts-bi", 1, model="m")["label_weights"] == [0.25, 0.75]
    for bad in ([0, 0], [1, 2, 3]):
        config["sts"]["mutual"]["cross_weights"] = bad
        with pytest.raises(ConfigError, match=r"sts.mutual.cross_weights: need 2 non-negative weights"):
            hparams_for(config, "sts-bi", 1, model="m")
    del config["sts"]["mutual"]["cross_weights"]
    config["sts"]["cross_loss"], config["sts"]["bi_loss"] = "cosent", "cosent"
    assert hparams_for(config, "sts-cross", 1, model="m")["loss"] == "cosent"
    assert hparams_for(config, "sts-bi", 1, model="m")["loss"] == "cosent"


def test_unknown_recipe_and_unknown_key_are_clear_errors():
    with pytest.raises(ConfigError, match="unknown training recipe 'crosss'"):
        recipe("crosss")
    with pytest.raises(ConfigError, match="learnig_rate"):
        recipe("distill").Hparams.from_dict({"learnig_rate": 1e-5})


def test_the_entry_point_lists_recipes_and_each_recipes_inputs_and_settings():
    bare = subprocess.run([sys.executable, "-m", "bicross.train"], capture_output=True, text=True)
    assert bare.returncode != 0 and all(name in bare.stderr for name in RECIPES)
    helped = subprocess.run([sys.executable, "-m", "bicross.train", "sts-bi", "--help"], capture_output=True,
                            text=True, check=True)
    assert "--labels" in helped.stdout and "--pairs" in helped.stdout and "label_weights" in helped.stdout
