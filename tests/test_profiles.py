"""Every rule that can use a GPU gets its GPUs from both profiles (the rules themselves say gpu=0)."""

from __future__ import annotations

import re

import pytest
from workflow_utils import REPO


def gpu_rules() -> set[str]:
    """Rules whose block declares a `gpu` resource, and the `use rule ... as ...` copies of them."""
    rules: set[str] = set()
    copies: list[tuple[str, str]] = []
    for path in sorted((REPO / "rules").glob("*.smk")):
        text = path.read_text()
        for name, body in re.findall(r"^rule (\w+):\n((?:[ \t]+.*\n|\n)*)", text, flags=re.M):
            if re.search(r"^\s+gpu=", body, flags=re.M):
                rules.add(name)
        copies += re.findall(r"^\s*use rule (\w+) as (\w+)", text, flags=re.M)
    for _ in copies:  # copies of copies
        rules |= {new for old, new in copies if old in rules}
    return rules


def profile_block(profile: str, block: str) -> set[str]:
    text = (REPO / "profiles" / profile / "config.yaml").read_text()
    body = re.search(rf"^{block}:\n((?:[ \t]+.*\n|[ \t]*#.*\n)*)", text, flags=re.M)
    assert body, f"profiles/{profile}/config.yaml has no {block} block"
    return set(re.findall(r"^  (\w+):", body.group(1), flags=re.M))


def test_the_gpu_rules_are_found():
    rules = gpu_rules()
    assert {"encode_corpus", "train_cross", "distill_bi", "score_pairs_bi", "score_pairs_cross",
            "train_cross_supervised"} <= rules


@pytest.mark.parametrize("profile", ["default", "slurm"])
def test_every_gpu_rule_has_its_gpus_in_the_profile(profile):
    missing = gpu_rules() - profile_block(profile, "set-resources")
    assert not missing, f"profiles/{profile}/config.yaml set-resources lacks {sorted(missing)}"


def test_every_slurm_gpu_rule_has_threads():
    missing = gpu_rules() - profile_block("slurm", "set-threads")
    assert not missing, f"profiles/slurm/config.yaml set-threads lacks {sorted(missing)}"


def all_rules() -> set[str]:
    """Every rule of the workflow, `use rule ... as ...` copies included."""
    rules: set[str] = set()
    for path in sorted((REPO / "rules").glob("*.smk")):
        text = path.read_text()
        rules |= set(re.findall(r"^rule (\w+):", text, flags=re.M))
        rules |= {new for _, new in re.findall(r"^\s*use rule (\w+) as (\w+)", text, flags=re.M)}
    return rules


@pytest.mark.parametrize(("profile", "block"), [("default", "set-resources"), ("slurm", "set-resources"),
                                                ("slurm", "set-threads")])
def test_the_profiles_name_only_rules_that_exist(profile, block):
    """A renamed rule leaves no setting behind that applies to nothing (prepare_data, tokenize)."""
    unknown = profile_block(profile, block) - all_rules()
    assert not unknown, f"profiles/{profile}/config.yaml {block} names no rule of the workflow: {sorted(unknown)}"
