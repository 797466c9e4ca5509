"""results/<exp>/best/: the model a user should take of each encoder, chosen on a held-out split.

`manifest.json` names, per encoder (bi, cross; bi_b, cross_b with sts.mutual), the iteration with the
highest selection metric on the selection split (`bicross.summary.best_iterations`: the earliest on a
tie), its value and its model; `best/<encoder>` is a relative symlink to that model's folder, so
`SentenceTransformer("results/<exp>/best/bi")` and `CrossEncoder("results/<exp>/best/cross")` load it.
Bi-encoder 0 given as a hub name has no folder to link: the manifest names it, without a link.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pyarrow.parquet as pq

from bicross.errors import ConfigError
from bicross.schemas import atomic_dir
from bicross.summary import best_iterations

log = logging.getLogger("bicross.best")

MANIFEST = "manifest.json"


def write_best(metrics_path, out_dir, *, split: str, metric: str, models: dict[str, list[str | None]]) -> dict:
    """Write best/ (manifest and links) for the encoders of `models` (encoder -> model of iteration 0, 1,
    ...); returns the manifest."""
    table = pq.read_table(metrics_path)
    best = best_iterations(table, split, metric)
    if not best:
        known = sorted({r["metric"] for r in table.to_pylist() if r["split"] == split})
        raise ConfigError(f"config evaluate.select_metric {metric!r}: no such metric on split {split!r} in "
                          f"{os.fspath(metrics_path)} (it has {', '.join(known) or 'no rows'})")
    out = Path(out_dir)
    chosen = {}
    with atomic_dir(out) as tmp:
        tmp.mkdir()
        for encoder, (iteration, value) in sorted(best.items()):
            paths = models.get(encoder)
            if not paths or iteration >= len(paths) or paths[iteration] is None:
                continue  # not a model of the loop (the supervised baseline) or nothing to name
            model = paths[iteration]
            entry = {"iteration": iteration, "value": value, "model": model, "link": None}
            if Path(model).is_dir():
                os.symlink(os.path.relpath(Path(model).resolve(), out.resolve()), tmp / encoder)
                entry["link"] = encoder
            chosen[encoder] = entry
            log.info("best %s on %s by %s: iteration %d (%.4f), %s", encoder, split, metric, iteration, value, model)
        manifest = {"split": split, "metric": metric, "models": chosen}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest
