"""Peak memory of one `retrieve` job against the number of queries it searches. Prints JSON.

The job streams its run to Parquet one block of queries at a time (bicross.pipeline.retrieve, block =
RETRIEVE_BLOCK queries), so its peak memory should not grow with the queries: measured at --queries and
10x as many, each in a fresh process (peak RSS, VmHWM), against a corpus of --docs random unit vectors
in --shards shards. `--block 0` searches every query in one block (what the job did before streaming),
for comparison.

    python bench/retrieve_memory.py [--queries 30000] [--docs 20000] [--dim 256] [--depth 100] [--shards 2]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import sys, time
from bicross import pipeline
queries, out, depth, block, threads, *shards = sys.argv[1:]
def rss(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) / 1024
start_rss, start = rss("VmRSS:"), time.perf_counter()
block = int(block) or 1 << 40
pipeline.retrieve(queries, shards, int(depth), out, threads=int(threads), block=block)
print(start_rss, rss("VmHWM:"), time.perf_counter() - start)
"""


def write_inputs(root: Path, queries: int, docs: int, dim: int, shards: int, seed: int = 0) -> tuple[str, list[str]]:
    import numpy as np

    from bicross.index import embeddings_table
    from bicross.schemas import write_table

    rng = np.random.default_rng(seed)

    def unit(n):
        x = rng.normal(size=(n, dim)).astype(np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    paths = []
    for s, rows in enumerate(np.array_split(np.arange(docs), shards)):
        paths.append(str(root / f"shard-{s}.parquet"))
        write_table(embeddings_table([f"d{i}" for i in rows], unit(len(rows))), paths[-1])
    qpath = root / f"queries-{queries}.parquet"
    write_table(embeddings_table([f"q{i}" for i in range(queries)], unit(queries), "qid"), qpath)
    return str(qpath), paths


def measure(queries: str, shards: list[str], out: Path, depth: int, block: int, threads: int) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, queries, str(out), str(depth), str(block), str(threads),
                           *shards], capture_output=True, text=True, check=True)
    start_rss, peak, seconds = map(float, proc.stdout.split()[-3:])
    return {"peak_rss_mib": round(peak, 1), "rss_after_imports_mib": round(start_rss, 1),
            "peak_above_imports_mib": round(peak - start_rss, 1), "seconds": round(seconds, 2)}


def main() -> None:
    from bicross.pipeline import RETRIEVE_BLOCK

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=30000)
    parser.add_argument("--docs", type=int, default=20000)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--depth", type=int, default=100)
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    result = {"cpu": platform.processor() or platform.machine(), "block": RETRIEVE_BLOCK, "docs": args.docs,
              "dim": args.dim, "depth": args.depth, "shards": args.shards, "runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for n in (args.queries, 10 * args.queries):
            qpath, shards = write_inputs(root, n, args.docs, args.dim, args.shards)
            for name, block in (("streamed", RETRIEVE_BLOCK), ("one_block", 0)):
                result["runs"][f"{name}_{n}"] = measure(qpath, shards, root / "run.parquet", args.depth, block,
                                                        args.threads)
    runs, small, large = result["runs"], args.queries, 10 * args.queries
    for name in ("streamed", "one_block"):
        result[f"{name}_peak_ratio_10x_queries"] = round(
            runs[f"{name}_{large}"]["peak_rss_mib"] / runs[f"{name}_{small}"]["peak_rss_mib"], 3)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
