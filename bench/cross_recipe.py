"""Does the schema's default cross-encoder recipe learn? One row per (train queries, epochs).

Takes a finished retrieval run's iteration-1 files (mined negatives, tokens, bi-encoder 0's test run),
trains cross-encoder 1 with the recipe's defaults (bicross.train.cross.Hparams, equal to the schema's
`cross_encoder` defaults; `--set KEY=VALUE` changes one) on a seeded subset of the mined groups, reranks bi-encoder 0's top
`--depth` test candidates and prints one JSON line per row: steps, the no-learning check
(bicross.learning: mean loss of the first and last tenth of the steps, a uniform guess), nDCG@10 and
MRR@10 of the cross-encoder and of the bi-encoder it reranks. Same library calls as the workflow's
train_cross, rerank and evaluate stages.

    python bench/cross_recipe.py results/scifact --queries 100 300 all --epochs 1 2 3 [--depth 30]
        [--set head_learning_rate=null] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results", help="results/<experiment> of a run that mined iteration 1's negatives")
    parser.add_argument("--queries", nargs="+", default=["100", "300", "all"])
    parser.add_argument("--epochs", nargs="+", type=float, default=[1, 2, 3])
    parser.add_argument("--depth", type=int, default=30, help="bi-encoder 0's top candidates reranked")
    parser.add_argument("--model", default="sentence-transformers/all-MiniLM-L6-v2")
    parser.add_argument("--set", action="append", default=[], help="KEY=VALUE over the schema's defaults")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "src"))
    import torch

    from bicross import evaluate
    from bicross.models import model_slug
    from bicross.pipeline import rerank
    from bicross.train import run as train
    from bicross.train.cross import Hparams

    torch.set_num_threads(args.threads)
    res = Path(args.results)
    tokens = res / "tokens" / model_slug(args.model)
    negatives = pq.read_table(res / "iter1" / "negatives.parquet")
    qrels = pq.read_table(res / "data" / "qrels" / "test.parquet")
    bi_run = res / "iter0" / "bi" / "run" / "test.parquet"
    bi_table = pq.read_table(bi_run)
    bi = evaluate.evaluate_run(bi_table.filter(pc.less_equal(bi_table["rank"], args.depth)), qrels)
    hp = {}
    for item in args.set:
        key, value = item.split("=", 1)
        hp[key] = yaml.safe_load(value)
    settings = Hparams.from_dict(hp)
    order = np.random.default_rng(args.seed).permutation(negatives.num_rows)
    with tempfile.TemporaryDirectory() as tmp:
        for queries in args.queries:
            n = negatives.num_rows if queries == "all" else int(queries)
            subset = Path(tmp) / f"negatives-{n}.parquet"
            pq.write_table(negatives.take(pa.array(np.sort(order[:n]))), subset)
            for epochs in args.epochs:
                out = Path(tmp) / "model"
                shutil.rmtree(out, ignore_errors=True)
                start = time.perf_counter()
                inputs = {"negatives": str(subset), "queries": str(tokens / "queries" / "train.parquet"),
                          "corpus": str(tokens / "corpus.parquet")}
                summary = train("cross", inputs, str(out), str(out) + ".checkpoints",
                                {**hp, "model": args.model, "epochs": epochs, "seed": args.seed,
                                 "checkpoint_every": 10 ** 9})
                train_seconds = time.perf_counter() - start
                run = Path(tmp) / "run.parquet"
                rerank(str(out), str(bi_run), str(tokens / "queries" / "test.parquet"), str(tokens / "corpus.parquet"),
                       str(run), depth=args.depth, max_length=settings.max_length, precision=settings.precision,
                       threads=args.threads)
                cross = evaluate.evaluate_run(pq.read_table(run), qrels)
                print(json.dumps({
                    "train_queries": n, "epochs": epochs, "steps": summary["steps"], "train_seconds": round(train_seconds),
                    "learning": summary["learning"], "cross_ndcg@10": round(cross["ndcg@10"], 4),
                    "bi_ndcg@10": round(bi["ndcg@10"], 4), "cross_mrr@10": round(cross["mrr@10"], 4),
                    "bi_mrr@10": round(bi["mrr@10"], 4), "depth": args.depth, "hparams": hp,
                    "cpu": platform.processor() or platform.machine(),
                }), flush=True)


if __name__ == "__main__":
    main()
