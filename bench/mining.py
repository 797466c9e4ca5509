"""Hard-negative mining at N and 10N queries: seconds and peak memory (each run in a fresh process).

Synthetic data: a corpus of `--docs` docids, a depth-`--depth` run per query (distinct candidates),
1-2 positives per query (one usually inside the run), 1% of the qrels queries missing from the run
and 1% of the run queries with only 10 candidates (both need a top-up from the corpus). Prints JSON;
the target is peak memory at 10N queries within 1.5x of that at N.

    python bench/mining.py [--queries 20000] [--docs 200000] [--depth 100] [--workdir /tmp/x]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bicross import schemas

SETTINGS = {"rank_start": 3, "rank_end": 100, "negatives_per_query": 30, "seed": 42, "chunk_queries": 10_000}


def generate(root: Path, queries: int, docs: int, depth: int, seed: int = 0) -> tuple[Path, Path, Path]:
    """Write corpus, qrels and run Parquet files for `queries` queries, a slice of queries at a time."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    docids = pa.array([f"doc{i}" for i in range(docs)], pa.string())
    corpus = root / "corpus.parquet"
    if not corpus.exists():
        schemas.write_table(pa.table({"docid": docids, "title": pa.nulls(docs, pa.string()),
                                      "text": pa.nulls(docs, pa.string())}), corpus, schemas.CORPUS)
    run, qrels = root / f"run-{queries}.parquet", root / f"qrels-{queries}.parquet"
    qrels_q: list[pa.Array] = []
    qrels_d: list[pa.Array] = []
    step = 10_000
    with pq.ParquetWriter(run, schemas.RUN) as writer:
        for start in range(0, queries, step):
            n = min(step, queries - start)
            qids = pa.array([f"q{i}" for i in range(start, start + n)], pa.string())
            # distinct candidates: a random start and a prime stride (coprime with `docs`)
            cand = (rng.integers(0, docs, size=(n, 1)) + np.arange(depth) * 7919) % docs
            lengths = np.where(rng.random(n) < 0.01, min(10, depth), depth)
            keep = (np.arange(depth)[None, :] < lengths[:, None]).reshape(-1)
            in_run = rng.random(n) >= 0.01
            keep &= np.repeat(in_run, depth)
            rows = np.repeat(np.arange(n), depth)[keep]
            writer.write_table(pa.table({
                "qid": qids.take(pa.array(rows)),
                "docid": docids.take(pa.array(cand.reshape(-1)[keep])),
                "rank": pa.array(np.tile(np.arange(1, depth + 1, dtype=np.int32), n)[keep]),
                "score": pa.array(rng.random(int(keep.sum()), dtype=np.float32)),
            }, schema=schemas.RUN))
            # positive 1: a run candidate at rank 1..20; positive 2 (every other query): a random doc
            first = cand[np.arange(n), rng.integers(0, min(20, depth), size=n)]
            second = rng.integers(0, docs, size=n)
            both = np.arange(n) % 2 == 0
            qrels_q += [qids, qids.filter(pa.array(both))]
            qrels_d += [docids.take(pa.array(first)), docids.take(pa.array(second[both]))]
    q, d = pa.concat_arrays(qrels_q), pa.concat_arrays(qrels_d)
    schemas.write_table(pa.table({"qid": q, "docid": d, "relevance": pa.array(np.ones(len(q), np.int32))}),
                        qrels, schemas.QRELS)
    return run, qrels, corpus


def peak_rss_kib() -> int:
    """This process' peak RSS. VmHWM, not ru_maxrss: on Linux ru_maxrss survives execve, so a child
    would report the parent's peak (the data generator's) when that was higher."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def child(run: str, qrels: str, corpus: str, out: str) -> None:
    from bicross.mining import mine_negatives

    imported = peak_rss_kib()
    start = time.perf_counter()
    counts = mine_negatives(run, qrels, corpus, out, **SETTINGS)
    seconds = time.perf_counter() - start
    peak = peak_rss_kib()
    print(json.dumps({"seconds": round(seconds, 2), "peak_rss_mib": round(peak / 1024, 1),
                      "rss_after_imports_mib": round(imported / 1024, 1), "counts": counts}))


def measure(paths: tuple[Path, Path, Path], out: Path) -> dict:
    result = subprocess.run([sys.executable, __file__, "--child", *map(str, paths), str(out)],
                            check=True, capture_output=True, text=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(*sys.argv[2:6])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=20_000)
    parser.add_argument("--docs", type=int, default=200_000)
    parser.add_argument("--depth", type=int, default=100)
    parser.add_argument("--workdir", default=None, help="keep the generated data here (default: a temp dir)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-mining-") as tmp:
        root = Path(args.workdir or tmp)
        results = {}
        for label, queries in (("N", args.queries), ("10N", 10 * args.queries)):
            start = time.perf_counter()
            paths = generate(root, queries, args.docs, args.depth)
            generated = time.perf_counter() - start
            result = measure(paths, root / f"negatives-{queries}.parquet")
            result.update(queries=queries, run_rows=pq.ParquetFile(paths[0]).metadata.num_rows,
                          generate_seconds=round(generated, 1))
            results[label] = result
    n, big = results["N"], results["10N"]
    print(json.dumps({
        "benchmark": "mining",
        "machine": f"{platform.processor() or platform.machine()}, python {platform.python_version()}",
        "corpus_docs": args.docs,
        "depth": args.depth,
        "settings": SETTINGS,
        "N": n,
        "10N": big,
        "peak_rss_ratio_10N_over_N": round(big["peak_rss_mib"] / n["peak_rss_mib"], 3),
        "seconds_ratio_10N_over_N": round(big["seconds"] / n["seconds"], 2),
        "target_peak_rss_ratio": 1.5,
    }, indent=2))


if __name__ == "__main__":
    main()
