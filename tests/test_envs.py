"""The conda environments (envs/*.yaml) hold what pyproject.toml says bicross needs, at agreeing versions."""

from __future__ import annotations

import os
import re

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version
from workflow_utils import REPO

from bicross.envs import ENV_FILES, conda_env_file, with_source_on_pythonpath
from bicross.errors import ConfigError

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ENV_PATHS = sorted((REPO / "envs").glob("*.yaml"))
# PyPI name -> the conda-forge names that provide it (default: the same name)
CONDA_NAMES = {"torch": {"pytorch", "pytorch-gpu", "pytorch-cpu"}, "faiss-cpu": {"faiss-cpu", "faiss-gpu"}}
# needed by the Snakemake process, not inside a job (a job's script finds Snakemake's own modules)
NOT_IN_JOBS = {"snakemake"}
# environment entries that are not Python packages of pyproject
TOOLING = {"python", "pip", "cuda-version"}


def pyproject():
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def runtime_requirements() -> dict[str, Requirement]:
    reqs = {canonicalize_name(r.name): r for r in map(Requirement, pyproject()["dependencies"])}
    return {name: r for name, r in reqs.items() if name not in NOT_IN_JOBS}


def constraint_pins() -> dict[str, Version]:
    """constraints.txt: the exact versions the test suite runs with."""
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            req = Requirement(line)
            (spec,) = req.specifier
            pins[canonicalize_name(req.name)] = Version(spec.version)
    return pins


def conda_entry(spec: str) -> tuple[str, SpecifierSet]:
    """`name`, `name=1.2` (conda: 1.2.*), `name==1.2`, `name>=1.2`, `name=1.2=build` -> (name, specifier)."""
    m = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*(.*)", spec.strip())
    name, version = m.group(1), m.group(2).strip()
    if re.fullmatch(r"=[^=<>!]+(=.*)?", version):  # conda's single '=' (with an optional build string)
        version = f"=={version[1:].split('=')[0]}.*"
    return canonicalize_name(name), SpecifierSet(version)


def env_entries(path) -> list[tuple[str, str, SpecifierSet]]:
    """(installer, name, specifier) for every package of an environment file."""
    entries = []
    for dep in yaml.safe_load(path.read_text())["dependencies"]:
        if isinstance(dep, dict):
            for line in dep["pip"]:
                assert not line.startswith("-"), f"{path.name}: pip option {line!r} (see the file's header)"
                req = Requirement(line)
                entries.append(("pip", canonicalize_name(req.name), req.specifier))
        else:
            entries.append(("conda", *conda_entry(dep)))
    return entries


def provides(pypi_name: str, installer: str, name: str) -> bool:
    return name == pypi_name or (installer == "conda" and name in CONDA_NAMES.get(pypi_name, ()))


def exact(spec: SpecifierSet) -> Version | None:
    (only,) = spec if len(spec) == 1 else (None,)
    if only is not None and only.operator in ("==", "===") and "*" not in only.version:
        return Version(only.version)
    return None


def test_the_env_files_are_the_ones_the_rules_can_name():
    assert {p.relative_to(REPO).as_posix() for p in ENV_PATHS} == set(ENV_FILES.values())


def env_problems(path) -> list[str]:
    """Each runtime dependency once, pinned as constraints.txt tests it (pip) or within pyproject's range."""
    entries = env_entries(path)
    pins = constraint_pins()
    problems = []
    for pypi_name, req in runtime_requirements().items():
        found = [(inst, name, spec) for inst, name, spec in entries if provides(pypi_name, inst, name)]
        if len(found) != 1:
            problems.append(f"{pypi_name} ({req.specifier}): {len(found)} entries {[n for _, n, _ in found]}")
            continue
        installer, name, spec = found[0]
        pinned = exact(spec)
        if pinned is not None:
            if not req.specifier.contains(pinned, prereleases=True):
                problems.append(f"{name}=={pinned} is outside pyproject's {pypi_name}{req.specifier}")
            if installer == "pip" and pypi_name in pins and pinned != pins[pypi_name]:
                problems.append(f"{name}=={pinned}, constraints.txt tests {pins[pypi_name]}")
        elif str(spec) and spec != req.specifier:
            problems.append(f"{name}{spec} disagrees with pyproject's {pypi_name}{req.specifier}")
        elif installer == "pip" and pypi_name in pins:
            problems.append(f"{name}{spec or ' (unpinned)'}: constraints.txt tests {pypi_name}=={pins[pypi_name]}")
    return problems


@pytest.mark.parametrize("path", ENV_PATHS, ids=lambda p: p.name)
def test_env_holds_every_runtime_dependency_at_agreeing_versions(path):
    problems = env_problems(path)
    assert not problems, f"{path.name}:\n" + "\n".join(problems)


def test_the_check_finds_missing_and_disagreeing_packages(tmp_path):
    env = yaml.safe_load((REPO / ENV_FILES["cpu"]).read_text())
    pip = env["dependencies"][-1]["pip"]
    pip.remove("numpy>=1.26")
    pip[pip.index("faiss-cpu==1.15.1")] = "faiss-cpu==1.7.0"
    pip[pip.index("pandas>=2.0")] = "pandas>=1.0"
    pip[pip.index("pyarrow==26.0.1")] = "pyarrow"
    (tmp_path / "env.yaml").write_text(yaml.safe_dump(env))
    problems = "\n".join(env_problems(tmp_path / "env.yaml"))
    assert "numpy (>=1.26): 0 entries" in problems
    assert "faiss-cpu==1.7.0 is outside pyproject's faiss-cpu>=1.8" in problems
    assert "pandas>=1.0 disagrees" in problems
    assert "pyarrow (unpinned): constraints.txt tests pyarrow==26.0.1" in problems


@pytest.mark.parametrize("path", ENV_PATHS, ids=lambda p: p.name)
def test_env_holds_nothing_pyproject_does_not_know(path):
    wanted = runtime_requirements()
    stray = [name for inst, name, _ in env_entries(path)
             if name not in TOOLING and not any(provides(p, inst, name) for p in wanted)]
    assert not stray, f"{path.name}: {stray} are not runtime dependencies in pyproject.toml"
    (python,) = [spec for _, name, spec in env_entries(path) if name == "python"]
    (version,) = python
    assert SpecifierSet(pyproject()["requires-python"]).contains(version.version.rstrip(".*"))


def test_gpu_env_has_cuda_builds_and_cpu_env_has_none():
    cpu = {name for _, name, _ in env_entries(REPO / ENV_FILES["cpu"])}
    gpu = {name for _, name, _ in env_entries(REPO / ENV_FILES["gpu"])}
    assert {"faiss-gpu", "pytorch-gpu"} <= gpu and not {"faiss-cpu", "torch"} & gpu
    assert {"faiss-cpu", "torch"} <= cpu and not {"faiss-gpu", "pytorch-gpu"} & cpu


def test_every_rule_names_the_chosen_env():
    directives = 0
    for smk in sorted((REPO / "rules").glob("*.smk")):
        lines = smk.read_text().splitlines()
        for i, line in enumerate(lines):
            if line.strip() == "conda:":
                directives += 1
                assert lines[i + 1].strip() == "CONDA_ENV", f"{smk.name}:{i + 2} names {lines[i + 1].strip()}"
    assert directives > 10


def test_conda_env_choice(tmp_path, monkeypatch):
    monkeypatch.delenv("BICROSS_CONDA_ENV", raising=False)
    assert conda_env_file(REPO) == str(REPO / "envs/bicross.yaml")
    assert conda_env_file(REPO, "gpu") == str(REPO / "envs/bicross-gpu.yaml")
    monkeypatch.setenv("BICROSS_CONDA_ENV", "gpu")
    assert conda_env_file(REPO) == str(REPO / "envs/bicross-gpu.yaml")
    own = tmp_path / "site.yaml"
    own.write_text("dependencies: [python=3.11]\n")
    assert conda_env_file(REPO, str(own)) == str(own)
    for bad in ("tpu", str(tmp_path / "missing.yaml")):
        with pytest.raises(ConfigError, match="BICROSS_CONDA_ENV"):
            conda_env_file(REPO, bad)
    src = str(REPO / "src")
    assert with_source_on_pythonpath(REPO, None) == src
    assert with_source_on_pythonpath(REPO, f"/x{os.pathsep}{src}") == f"{src}{os.pathsep}/x"
