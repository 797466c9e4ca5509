"""The conda environment file every rule names (used with --software-deployment-method conda).

`$BICROSS_CONDA_ENV` picks it: `cpu` (default) is envs/bicross.yaml, `gpu` is envs/bicross-gpu.yaml
(faiss-gpu and a CUDA PyTorch from conda-forge), anything else must be the path of an environment file.
An environment variable rather than config: config holds experiment parameters, and the same experiment
runs in either environment.
"""

from __future__ import annotations

import os
from pathlib import Path

from bicross.errors import ConfigError

VARIABLE = "BICROSS_CONDA_ENV"
ENV_FILES = {"cpu": "envs/bicross.yaml", "gpu": "envs/bicross-gpu.yaml"}


def conda_env_file(workflow_dir: str | os.PathLike, choice: str | None = None) -> str:
    """The absolute path of the chosen environment file (`choice` defaults to $BICROSS_CONDA_ENV)."""
    choice = choice if choice is not None else os.environ.get(VARIABLE, "") or "cpu"
    path = Path(workflow_dir) / ENV_FILES[choice] if choice in ENV_FILES else Path(choice)
    if not path.is_file() or path.suffix not in (".yaml", ".yml"):
        raise ConfigError(f"{VARIABLE}={choice!r}: expected one of {sorted(ENV_FILES)} or the path of an "
                          f"environment .yaml file ({path} is not one)")
    return str(path.resolve())


def with_source_on_pythonpath(workflow_dir: str | os.PathLike, pythonpath: str | None) -> str:
    """PYTHONPATH with the checkout's src/ first: conda envs hold bicross's dependencies, not bicross.

    (An env file cannot install the checkout: Snakemake creates the env from a copy of the file in
    .snakemake/conda/, where a relative `-e ../` names the wrong folder.)
    """
    src = str(Path(workflow_dir).resolve() / "src")
    rest = [p for p in (pythonpath or "").split(os.pathsep) if p and p != src]
    return os.pathsep.join([src, *rest])


def put_source_on_pythonpath(workflow_dir: str | os.PathLike) -> None:
    """Set PYTHONPATH for the jobs Snakemake starts from this process (under conda)."""
    os.environ["PYTHONPATH"] = with_source_on_pythonpath(workflow_dir, os.environ.get("PYTHONPATH"))
