"""Lever probes: rerun one iteration of an experiment with one change, reusing everything upstream.

A probe is a new experiment `<name>` built from a base config plus ``--set key=value`` changes, cut
at iteration k and evaluated on a few splits. With ``--reuse SRC`` it starts from a copy of
results/SRC: the data stage and iterations 0..k-1 (and, with ``--from bi``, iteration k's
cross-encoder too), so only what the change touches is trained again. The copies keep their
relative age but are moved after every input outside results/ (a dataset file touched later would
otherwise make Snakemake redo everything), and Snakemake runs with ``--rerun-triggers mtime``: the
copied files count as done even though the probe's config differs from the one that made them.

    bicross probe NAME --configfile config/examples/stsb.yaml --iteration 1
        --set cross_encoder.learning_rate=8e-5 [--reuse stsp-base] [--from cross|bi]

(one command line; Snakemake arguments go after ``--``, e.g. ``-- -n`` for a dry run) prints one
JSON object: the changes, the metrics of each encoder and split read from iter<k>/metrics/*.json, the
wall time and each job's time from results/<name>/benchmarks/.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from bicross.errors import ConfigError

ITER_DIR = re.compile(r"^iter(\d+)$")
STEP = 1e-3  # seconds between copies of different ages
NAME = re.compile(r"^[A-Za-z0-9_.-]+$")  # the schema's pattern for `experiment`


def parse_set(item: str) -> tuple[list[str], Any]:
    """``a.b.c=VALUE`` -> (["a", "b", "c"], VALUE parsed as YAML, so 8e-5, true, [1, 2] keep their types)."""
    key, sep, raw = item.partition("=")
    if not sep or not key or not all(key.split(".")):
        raise ConfigError(f"--set {item!r}: expected KEY.SUBKEY=VALUE, e.g. cross_encoder.learning_rate=8e-5")
    value = yaml.safe_load(raw)
    if isinstance(value, str) and re.fullmatch(r"[-+]?\d+(\.\d*)?[eE][-+]?\d+", raw.strip()):
        value = float(raw)  # YAML 1.1 reads 8e-5 (no dot) as a string
    return key.split("."), value


def probe_config(base: dict, name: str, iteration: int, changes: list[str], splits: list[str],
                 keep_eval_sets: bool = False) -> dict:
    """The probe's config: `base` with experiment `name`, `iteration` iterations, `splits` evaluated."""
    if not NAME.match(name):
        raise ConfigError(f"probe name {name!r}: expected letters, digits, '_', '.' or '-' (it names results/NAME)")
    if iteration < 0:
        raise ConfigError(f"--iteration must be >= 0, got {iteration}")
    cfg = copy.deepcopy(base)
    cfg["experiment"] = name
    cfg["iterations"] = iteration
    cfg.setdefault("evaluate", {})["splits"] = list(splits)
    if not keep_eval_sets:
        cfg.get("dataset", {}).pop("eval_sets", None)
    for item in changes:
        keys, value = parse_set(item)
        node = cfg
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: {key!r} is not a section of the config")
        node[keys[-1]] = value
    return cfg


def reused_paths(src: Path, iteration: int, start: str) -> list[Path]:
    """What a probe of iteration `iteration` copies from results/SRC: everything but iterations >= k and
    the run-level summaries (metrics.parquet, changes.parquet, best/, report/), plus iteration k's cross-encoder for `start` bi."""
    if start not in ("cross", "bi"):
        raise ConfigError(f"--from must be cross or bi, got {start!r}")
    if not src.is_dir():
        raise ConfigError(f"--reuse: {src} does not exist (run that experiment first)")
    keep = []
    for entry in sorted(src.iterdir()):
        m = ITER_DIR.match(entry.name)
        if m and int(m.group(1)) >= iteration:
            continue
        if entry.name in ("metrics.parquet", "changes.parquet", "best", "report", "logs", "benchmarks"):
            continue
        keep.append(entry)
    if start == "bi":
        cross = src / f"iter{iteration}" / "cross"
        if not cross.is_dir():
            raise ConfigError(f"--from bi: {cross} does not exist (train cross-encoder {iteration} first)")
        keep.append(cross)
    return keep


def seed_from(src: Path, dst: Path, iteration: int, start: str, now: float | None = None) -> int:
    """Copy the reused part of `src` into `dst`, keeping the files' order in time but moving them to
    `now` and a few milliseconds after, later than every input outside results/. Returns the number of
    files copied."""
    copied = []
    for path in reused_paths(src, iteration, start):
        target = dst / path.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        if path.is_dir():
            shutil.copytree(path, target, dirs_exist_ok=True)  # copy2: mtimes preserved
            copied += [target, *target.rglob("*")]
        else:
            shutil.copy2(path, target)
            copied.append(target)
    files = [p for p in copied if p.is_file()]
    now = time.time() if now is None else now
    # rank, not offset: a reused run that took hours must not leave copies hours in the future
    ranks = {t: i for i, t in enumerate(sorted({p.stat().st_mtime for p in files}))}
    for p in files:
        stamp = now + STEP * ranks[p.stat().st_mtime]
        os.utime(p, (stamp, stamp))
    # a folder is as old as its newest file (deepest folders first, so parents see their children)
    for folder in sorted((p for p in copied if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        stamp = max((c.stat().st_mtime for c in folder.iterdir()), default=now)
        os.utime(folder, (stamp, stamp))
    return len(files)


def read_metrics(res: Path, iteration: int) -> dict:
    """{"bi": {"test": {"spearman": ...}}, ...} from iter<k>/metrics/<encoder>-<split>.json."""
    out: dict[str, dict] = {}
    for path in sorted((res / f"iter{iteration}" / "metrics").glob("*.json")):
        doc = json.loads(path.read_text())
        out.setdefault(doc["encoder"], {})[doc["split"]] = doc["metrics"]
    return out


def job_seconds(res: Path) -> dict[str, float]:
    """Seconds per job from Snakemake's benchmark files: {"train_cross/iter1": 963.2, ...}."""
    from bicross.report import read_benchmarks

    return {job: seconds for _, job, seconds, _ in read_benchmarks(res / "benchmarks")}


def run_probe(args) -> dict:
    base_path = Path(args.configfile)
    base = yaml.safe_load(base_path.read_text()) or {}
    splits = args.splits.split(",")
    cfg = probe_config(base, args.name, args.iteration, args.set or [], splits, args.keep_eval_sets)
    workdir = Path(args.directory).resolve()
    res = workdir / "results" / args.name
    if res.exists() and not args.resume:
        raise ConfigError(f"{res} exists: pick another NAME, delete it, or pass --resume to continue it")
    res.mkdir(parents=True, exist_ok=True)
    config_path = res.parent / f"{args.name}.probe.yaml"
    config_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    copied = 0
    if args.reuse and not args.resume:
        copied = seed_from(workdir / "results" / args.reuse, res, args.iteration, args.start)
    # iteration 0 has no cross-encoder; --from bi reuses cross-encoder k and trains only bi-encoder k
    encoders = ["bi"] if args.start == "bi" or args.iteration == 0 else ["cross", "bi"]
    targets = [f"results/{args.name}/iter{args.iteration}/metrics/{enc}-{split}.json"
               for enc in encoders for split in splits]
    snakefile = Path(__file__).resolve().parents[2] / "Snakefile"
    cmd = [sys.executable, "-m", "snakemake", "-s", str(snakefile), "-d", str(workdir), "--configfile",
           str(config_path), "--cores", str(args.cores), "--rerun-triggers", "mtime", *args.snakemake_args,
           "--", *targets]
    start = time.time()
    log = res.parent / f"{args.name}.probe.log"
    with open(log, "w") as fh:
        proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=workdir)
    wall = time.time() - start
    if proc.returncode != 0:
        raise SystemExit(f"bicross probe: snakemake failed ({proc.returncode}); see {log}")
    return {"name": args.name, "config": str(config_path), "base": str(base_path), "changes": args.set or [],
            "iteration": args.iteration, "reused_from": args.reuse, "reused_files": copied,
            "metrics": read_metrics(res, args.iteration), "wall_seconds": round(wall, 1),
            "job_seconds": job_seconds(res), "log": str(log)}


def add_parser(sub) -> None:
    p = sub.add_parser("probe", help="rerun iteration k of an experiment with one change (a lever probe)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", help="the probe's experiment name (results/NAME)")
    p.add_argument("--configfile", required=True, help="base config, e.g. config/examples/stsb.yaml")
    p.add_argument("--iteration", type=int, default=1, help="the iteration to train and evaluate (default 1)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="a change, e.g. distill.epochs=3 (repeatable)")
    p.add_argument("--splits", default="dev,test", help="comma-separated splits to evaluate (default dev,test)")
    p.add_argument("--keep-eval-sets", action="store_true", help="keep the base config's dataset.eval_sets")
    p.add_argument("--reuse", metavar="SRC", help="copy data and iterations < k from results/SRC")
    p.add_argument("--from", dest="start", default="cross", choices=["cross", "bi"],
                   help="bi: also reuse SRC's cross-encoder k and retrain only bi-encoder k")
    p.add_argument("--resume", action="store_true", help="continue an interrupted probe of the same name")
    p.add_argument("--cores", default="all")
    p.add_argument("--directory", default=".", help="the workflow's working directory (default .)")
    p.set_defaults(func=lambda args: print(json.dumps(run_probe(args), indent=2)))
