"""MS MARCO at scale: encode and search time projected from measured throughput, and the recall of the
approximate indexes (ivf, hnsw) against exact search on a real corpus. Prints JSON.

Everything runs through the workflow's own stage functions (bicross.pipeline, bicross.index):

1. Encode: the real passages of --data (the 5,000-passage TREC DL19 subset of MS MARCO) are tokenized
   (max 256 tokens) and encoded once with the packaged all-MiniLM-L6-v2 in one `encode` call (what one
   encode_corpus job does) -> passages/s with --threads threads. Also encoded: the first --queries
   dev-small topics and the 43 DL19 topics.
2. Recall: those passages as one shard; exact (flat) top-k vs the ivf and hnsw indexes with the
   --configfile's `retrieve:` settings (else the schema defaults), plus a small sweep of nprobe /
   efSearch, for both query sets (dev-small queries are mostly about other topics than this subset;
   the DL19 topics are the ones its passages were judged for). A 5,000-vector shard gets few ivf lists,
   so ivf also runs at the probe fraction of a 64-shard MS MARCO shard (nprobe/nlist as there).
3. Shard scale: one synthetic shard of MS MARCO's shard size (random unit vectors of the model's
   dimension) is written, read and searched by the dev queries (flat), and ivf/hnsw indexes are built
   and searched on it. HNSW is built on --hnsw-sample vectors and scaled by n log n (it is the slowest
   to build). Random vectors are the hard case for approximate indexes: their times are upper bounds.
4. Projection: 8,841,823 passages in --shards shards; encode and index builds run one job per shard,
   --workers at a time (each like this machine with --threads threads); `retrieve` is one job per split
   that walks all shards in turn, so its time does not shrink with workers (it grows with queries).

    python bench/scale.py [--workers 1 8 64] [--threads 2] [--queries 1000] [--depth 1000]
        [--configfile config/examples/msmarco.yaml] [--data ../shared/data/msmarco-passage-format]
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import yaml

from bicross import devices, pipeline
from bicross.data.msmarco import read_tsv
from bicross.index import IndexSettings, embeddings_table, read_embeddings, read_ids, search_shards
from bicross.logs import rule_log
from bicross.schemas import CORPUS, QUERIES, write_table

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
MSMARCO_PASSAGES = 8_841_823
COLLECTION = "collection.dl19-subset.tsv"
DL19_TOPICS = "topics.dl19-passage.txt"


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def recall(got: np.ndarray, want: np.ndarray, k: int) -> float:
    """Mean share of the exact top-k that the approximate top-k found."""
    return round(float(np.mean([len(set(g[:k]) & set(w[:k])) / k for g, w in zip(got, want, strict=True)])), 4)


def encode_real(data: Path, work: Path, passages: int | None, queries: int, topics: str, args) -> dict:
    """Tokenize and encode the real passages (the first `passages`), the first `queries` of `topics`
    and the DL19 topics (the queries this passage subset was judged for)."""
    # the MS MARCO loader's own parser; not load_dataset, which keeps only queries judged in this subset
    corpus = read_tsv(data / COLLECTION, CORPUS, "passages: pid TAB text").table.slice(0, passages)
    query_sets = {"dev": read_tsv(data / topics, QUERIES, "queries: qid TAB text").table.slice(0, queries),
                  "dl19": read_tsv(data / DL19_TOPICS, QUERIES, "queries: qid TAB text").table}
    write_table(corpus, work / "data/corpus.parquet", CORPUS)
    for name, table in query_sets.items():
        write_table(table, work / f"data/queries/{name}.parquet", QUERIES)
    pipeline.tokenize(MODEL, str(work / "data/corpus.parquet"),
                      {name: str(work / f"data/queries/{name}.parquet") for name in query_sets}, 32, 256,
                      str(work / "tokens/corpus.parquet"), {name: str(work / f"tokens/{name}.parquet") for name in query_sets})
    common = {"precision": args.precision, "batch_size": args.batch_size, "threads": args.threads}
    _, corpus_s = timed(pipeline.encode, MODEL, str(work / "tokens/corpus.parquet"), str(work / "corpus.parquet"),
                        **common)
    query_s = {}
    for name in query_sets:
        _, query_s[name] = timed(pipeline.encode, MODEL, str(work / f"tokens/{name}.parquet"),
                                 str(work / f"{name}.parquet"), id_column="qid", **common)
    return {"passages": corpus.num_rows, "queries": query_sets["dev"].num_rows,
            "corpus_seconds": corpus_s, "query_seconds": query_s["dev"]}


def recall_table(work: Path, queries_name: str, settings: IndexSettings, depth: int, ks: list[int]) -> dict:
    """Exact vs approximate on the real corpus (one shard), with a small sweep of the search setting."""
    shard = work / "corpus.parquet"
    _, queries = read_embeddings(work / f"{queries_name}.parquet")
    (_, exact), flat_s = timed(search_shards, queries, [shard], depth)
    n = len(read_ids(shard))
    out = {"corpus": n, "queries": len(queries), "depth": depth, "flat_search_seconds": round(flat_s, 2)}

    def run(s: IndexSettings) -> dict:
        # search settings do not change the index: each build setting is built once
        index_file = work / ("-".join(f"{k}{v}" for k, v in s.build_params().items()) + ".faiss")
        if not index_file.exists():
            pipeline.build_index(str(shard), str(index_file), s.build_params())
        (_, got), search_s = timed(search_shards, queries, [shard], depth, s, [index_file])
        return {**s.search_params(), **{f"recall@{k}": recall(got, exact, k) for k in ks},
                "search_seconds": round(search_s, 2)}

    ivf, hnsw = replace(settings, index="ivf"), replace(settings, index="hnsw")
    big = ivf.lists_for(math.ceil(MSMARCO_PASSAGES / 64))
    lists = ivf.lists_for(n)
    out["ivf"] = {"nlist": lists, "configured": run(ivf),
                  f"nprobe/nlist as a 64-shard MS MARCO shard's {ivf.nprobe}/{big}":
                      run(replace(ivf, nprobe=max(1, round(lists * ivf.nprobe / big)))),
                  "sweep": [run(replace(ivf, nprobe=p)) for p in (4, 8, 16, 32, 64)]}
    out["hnsw"] = {"m": hnsw.m, "ef_construction": hnsw.ef_construction, "configured": run(hnsw),
                   "sweep": [run(replace(hnsw, ef_search=e)) for e in (16, 32, 64, 128)]}
    return out


def shard_timings(work: Path, settings: IndexSettings, shard_size: int, hnsw_sample: int, depth: int) -> dict:
    """Write/read/search one MS MARCO-sized shard of random unit vectors; build and search ivf and hnsw."""
    _, queries = read_embeddings(work / "dev.parquet")
    rng = np.random.default_rng(0)

    def write_shard(n: int, name: str) -> Path:
        x = rng.standard_normal((n, queries.shape[1]), dtype=np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        path = work / name
        write_table(embeddings_table([str(i) for i in range(n)], x), path)
        return path

    shard = write_shard(shard_size, "shard.parquet")
    _, read_s = timed(read_embeddings, shard)
    _, flat_s = timed(search_shards, queries, [shard], depth)
    out = {"shard_size": shard_size, "queries": len(queries), "depth": depth, "read_seconds": round(read_s, 2),
           "flat": {"search_seconds": round(flat_s, 2)}}
    ivf = replace(settings, index="ivf")
    _, build_s = timed(pipeline.build_index, str(shard), str(work / "ivf-shard.faiss"), ivf.build_params())
    _, search_s = timed(search_shards, queries, [shard], depth, ivf, [work / "ivf-shard.faiss"])
    out["ivf"] = {**ivf.search_params(), "nlist": ivf.lists_for(shard_size), "build_seconds": round(build_s, 2),
                  "search_seconds": round(search_s, 2)}
    n = min(hnsw_sample, shard_size)
    sample = write_shard(n, "hnsw-sample.parquet")
    hnsw = replace(settings, index="hnsw")
    _, build_s = timed(pipeline.build_index, str(sample), str(work / "hnsw-sample.faiss"), hnsw.build_params())
    _, search_s = timed(search_shards, queries, [sample], depth, hnsw, [work / "hnsw-sample.faiss"])
    scale = shard_size * math.log(shard_size) / (n * math.log(n))
    out["hnsw"] = {**hnsw.search_params(), "m": hnsw.m, "ef_construction": hnsw.ef_construction,
                   "built_on": n, "build_seconds_measured": round(build_s, 2),
                   "build_seconds": round(build_s * scale, 1),
                   "search_seconds": round(search_s * math.log(shard_size) / math.log(n), 2)}
    return out


def project(enc: dict, shard: dict, shards: int, workers: list[int], split_queries: dict[str, int]) -> list[dict]:
    """Wall-clock hours for the corpus from the per-shard job times (one job per shard, `w` at a time).

    A shard's search = reading it (or its index) + a part proportional to the queries (and, for flat
    and ivf, to the shard size; hnsw's grows with log n, already applied to its measurement).
    """
    size = math.ceil(MSMARCO_PASSAGES / shards)
    grow = size / shard["shard_size"]
    encode_job = enc["corpus_seconds"] * size / enc["passages"]  # includes the model load: an upper bound
    read = shard["read_seconds"] * grow
    per_query = {kind: max(shard[kind]["search_seconds"] - shard["read_seconds"], 0) / shard["queries"] * grow
                 for kind in ("flat", "ivf")}
    sample_read = shard["read_seconds"] * shard["hnsw"]["built_on"] / shard["shard_size"]
    per_query["hnsw"] = max(shard["hnsw"]["search_seconds"] - sample_read, 0) / shard["queries"]
    build = {"flat": 0.0, "ivf": shard["ivf"]["build_seconds"] * grow, "hnsw": shard["hnsw"]["build_seconds"] * grow}
    rows = []
    for w in workers:
        waves = math.ceil(shards / w)
        rows.append({
            "workers": w,
            "encode_hours": round(waves * encode_job / 3600, 2),
            "build_index_hours": {kind: round(waves * b / 3600, 2) for kind, b in build.items()},
            "retrieve_hours": {kind: {split: round(shards * (read + q * per_query[kind]) / 3600, 2)
                                      for split, q in split_queries.items()} for kind in per_query},
        })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--shards", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--passages", type=int, default=None, help="the first N passages (default: all)")
    parser.add_argument("--queries", type=int, default=1000, help="dev-small topics encoded and searched")
    parser.add_argument("--topics", default="topics.msmarco-passage.dev-subset.txt",
                        help="queries file in --data (qid TAB text)")
    parser.add_argument("--depth", type=int, default=None, help="default: the config's retrieve.depth, else 1000")
    parser.add_argument("--k", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--hnsw-sample", type=int, default=10_000)
    parser.add_argument("--configfile", help="a workflow config: its retrieve: section picks the index settings")
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/msmarco-passage-format"))
    parser.add_argument("--workdir", help="keep the intermediate files here (default: a temporary folder)")
    args = parser.parse_args()

    retrieve = (yaml.safe_load(Path(args.configfile).read_text()) or {}).get("retrieve", {}) if args.configfile else {}
    settings = IndexSettings.from_config(retrieve)
    depth = args.depth or retrieve.get("depth", 1000)
    devices.set_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        with rule_log(str(work / "bench.log")):
            enc = encode_real(Path(args.data), work, args.passages, args.queries, args.topics, args)
            quality = {"dev-small topics (first --queries)": recall_table(work, "dev", settings, max(args.k), args.k),
                       "DL19 topics (the subset's own)": recall_table(work, "dl19", settings, max(args.k), args.k)}
            shard = shard_timings(work, settings, math.ceil(MSMARCO_PASSAGES / args.shards), args.hnsw_sample, depth)
        total = time.perf_counter() - start
    device = devices.pick_device()
    print(json.dumps({
        "benchmark": "scale",
        "model": MODEL,
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
                   f"bf16 hardware: {devices.cpu_has_bf16()}, device {device}",
        "threads": args.threads,
        "encode": {"passages": enc["passages"], "precision": str(devices.resolve_precision(args.precision, device)).removeprefix("torch."),
                   "passages_per_s": round(enc["passages"] / enc["corpus_seconds"], 1),
                   "seconds": round(enc["corpus_seconds"], 1), "queries": enc["queries"],
                   "queries_per_s": round(enc["queries"] / enc["query_seconds"], 1)},
        "recall_vs_exact": quality,
        "msmarco_shard": shard,
        "projection": {"passages": MSMARCO_PASSAGES, "shards": args.shards, "depth": depth,
                       "retrieve_queries": {"dev-small": 6980, "train": 502_939},
                       "by_workers": project(enc, shard, args.shards, args.workers,
                                             {"dev-small": 6980, "train": 502_939})},
        "bench_seconds": round(total, 1),
    }, indent=2))


if __name__ == "__main__":
    main()
