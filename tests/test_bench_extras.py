"""bench/*.py scripts that need an optional extra say which one and how to install it, in one line."""

from __future__ import annotations

import ast
import os
import subprocess
import sys

import pytest
from conftest import REPO
from packaging.requirements import Requirement


def pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def modules_of(requirements: list[str]) -> set[str]:
    """Import names of requirements (`snakemake-executor-plugin-slurm>=1.0` -> snakemake_executor_plugin_slurm)."""
    return {Requirement(r).name.replace("-", "_").lower() for r in requirements}


def test_a_missing_extra_stops_train_cross_with_one_line(tmp_path):
    """`datasets` made unimportable (a package of that name on PYTHONPATH that raises on import), as on a
    machine without the bench extra: the script stops at once with the extra and the install command."""
    shim = tmp_path / "shim" / "datasets"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("raise ImportError('datasets is hidden by this test')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "shim"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "train_cross.py"), "--steps", "1"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert proc.returncode == 1
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("bench/train_cross.py needs the 'datasets' package")
    assert "bicross's 'bench' extra installs: pip install -e '.[bench]'" in lines[0]
    assert "datasets is hidden by this test" in lines[0]
    assert "datasets" in modules_of(pyproject()["optional-dependencies"]["bench"])  # the extra named installs it


def test_every_bench_script_checks_the_extras_it_imports():
    """A bench script importing a module that only an extra installs calls bicross.extras.require for it,
    naming an extra that lists it."""
    project = pyproject()
    only_extras = {extra: modules_of(reqs) - modules_of(project["dependencies"])
                   for extra, reqs in project["optional-dependencies"].items()}
    for script in sorted((REPO / "bench").glob("*.py")):
        tree = ast.parse(script.read_text())
        imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                    for alias in node.names}
        imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                     if isinstance(node, ast.ImportFrom) and node.module and not node.level}
        required = {(node.args[0].value, node.args[1].value) for node in ast.walk(tree)
                    if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "require"}
        for extra, modules in only_extras.items():
            for module in sorted(imported & modules):
                assert (module, extra) in required, f"{script.name} imports {module} (extra {extra}) unchecked"
