"""How long Snakemake takes to plan a run: `snakemake -n` of a config (default: the embedded default,
2 iterations) in a fresh working directory, `--repeat` times. Every `snakemake` call pays
this before any job starts (dry runs, --dag, --report, each resumed run). Prints JSON: the wall
times, their median, the jobs planned, and whether the planning process imported torch.

    python bench/plan.py [--configfile config/config.yaml] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# runs snakemake's CLI in this process and reports, at exit, whether torch was imported
PROBE = ("import atexit, sys\n"
         "atexit.register(lambda: print('torch imported:', 'torch' in sys.modules, file=sys.stderr))\n"
         "from snakemake.cli import main\n"
         "sys.argv = ['snakemake', *sys.argv[1:]]\n"
         "main()\n")


def plan_once(configfile: Path, workdir: Path) -> tuple[float, str, str]:
    cmd = [sys.executable, "-c", PROBE, "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--configfile",
           str(configfile), "--cores", "1", "-n", "--quiet", "rules"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=workdir)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"snakemake -n failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return wall, proc.stdout, proc.stderr


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--configfile", type=Path, default=REPO / "config" / "config.yaml")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    walls, jobs, torch_imported = [], None, None
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeat):
            wall, out, err = plan_once(args.configfile.resolve(), Path(tmp))
            walls.append(round(wall, 3))
            total = [line.split()[-1] for line in out.splitlines() if line.strip().startswith("total")]
            jobs = int(total[0]) if total else None
            torch_imported = "torch imported: True" in err
    print(json.dumps({"configfile": str(args.configfile), "jobs_planned": jobs, "wall_s": walls,
                      "median_s": statistics.median(walls), "torch_imported": torch_imported,
                      "cpu": platform.processor() or platform.machine(), "python": platform.python_version()},
                     indent=2))


if __name__ == "__main__":
    main()
