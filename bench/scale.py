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
4. Cross-encoder scoring: the packaged MiniLM with a new 1-logit head (the untrained cross-encoder of
   iteration 1; a trained one costs the same) reranks the top --rerank-depth of the first
   --rerank-queries dev topics through `pipeline.rerank` -> pairs/s.
5. Projection: 8,841,823 passages in --shards shards; encode and index builds run one job per shard,
   --workers at a time (each like this machine with --threads threads). Retrieval, reranking and teacher
   scoring run in parts (retrieve.query_shards, cross_encoder.score_shards), one per worker: a retrieve
   part searches every corpus shard for its share of the queries, a scoring part scores its share of
   the pairs (dev-small reranked to cross_encoder.rerank_depth; the train queries' top
   cross_encoder.teacher_depth plus their positives scored as teacher).

    python bench/scale.py [--workers 1 8 64] [--threads 2] [--queries 1000] [--depth 1000] [--rerank-queries 20]
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
SPLIT_QUERIES = {"dev-small": 6980, "train": 502_939}
TRAIN_POSITIVES = 532_761  # qrels.train.tsv's judged pairs: each scored as teacher beside the candidates


def schema_defaults(section: str) -> dict:
    """A config section's defaults from the workflow's schema."""
    schema = yaml.safe_load((Path(__file__).resolve().parents[1] / "workflow/schemas/config.schema.yaml").read_text())
    return {k: v.get("default") for k, v in schema["properties"][section]["properties"].items()}


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


def cross_scoring(work: Path, queries: int, depth: int, args) -> dict:
    """Cross-encoder pairs/s: the first `queries` dev topics' exact top-`depth` reranked by MiniLM with a
    new 1-logit head, through the rerank stage."""
    import pyarrow.parquet as pq

    from bicross.index import run_table
    from bicross.score import CrossEncoder

    qids, vectors = read_embeddings(work / "dev.parquet")
    scores, docids = search_shards(vectors[:queries], [work / "corpus.parquet"], depth)
    write_table(run_table(qids[:queries], scores, docids), work / "run.parquet")
    cross = CrossEncoder.for_training(MODEL)
    cross.model.save_pretrained(work / "cross")
    cross.tokenizer.save_pretrained(work / "cross")
    tokens = pq.read_table(work / "tokens/dev.parquet").slice(0, queries)
    write_table(tokens, work / "tokens/rerank.parquet")
    _, seconds = timed(pipeline.rerank, str(work / "cross"), str(work / "run.parquet"),
                       str(work / "tokens/rerank.parquet"), str(work / "tokens/corpus.parquet"),
                       str(work / "reranked.parquet"), depth=depth, max_length=args.cross_max_length,
                       batch_size=args.batch_size, precision=args.precision, threads=args.threads)
    pairs = queries * depth
    return {"queries": queries, "depth": depth, "pairs": pairs, "max_length": args.cross_max_length,
            "seconds": round(seconds, 1), "pairs_per_s": round(pairs / seconds, 1)}


def project(enc: dict, shard: dict, cross: dict, shards: int, workers: list[int], split_queries: dict[str, int],
            scoring_pairs: dict[str, int]) -> list[dict]:
    """Wall-clock hours for the corpus from the per-job times: one job per corpus shard, and retrieval
    and scoring in one part per worker; `w` jobs at a time.

    A shard's search = reading it (or its index) + a part proportional to the queries (and, for flat
    and ivf, to the shard size; hnsw's grows with log n, already applied to its measurement). Every
    retrieve part reads every corpus shard. Scoring parts split the pairs evenly; the cost of merging the
    parts (a copy of the merged file) is left out.
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
            "retrieve_hours": {kind: {split: round(shards * (read + math.ceil(q / w) * per_query[kind]) / 3600, 2)
                                      for split, q in split_queries.items()} for kind in per_query},
            "cross_scoring_hours": {stage: round(math.ceil(pairs / w) / cross["pairs_per_s"] / 3600, 2)
                                    for stage, pairs in scoring_pairs.items()},
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
    parser.add_argument("--rerank-queries", type=int, default=20, help="dev topics reranked to time the cross-encoder")
    parser.add_argument("--cross-max-length", type=int, default=None,
                        help="default: the config's cross_encoder.max_length, else the schema's")
    parser.add_argument("--configfile", help="a workflow config: its retrieve: section picks the index settings")
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/msmarco-passage-format"))
    parser.add_argument("--workdir", help="keep the intermediate files here (default: a temporary folder)")
    args = parser.parse_args()

    chosen = (yaml.safe_load(Path(args.configfile).read_text()) or {}) if args.configfile else {}
    retrieve, cross_cfg = chosen.get("retrieve", {}), {**schema_defaults("cross_encoder"), **chosen.get("cross_encoder", {})}
    args.cross_max_length = args.cross_max_length or cross_cfg["max_length"]
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
            cross = cross_scoring(work, args.rerank_queries, cross_cfg["rerank_depth"], args)
        total = time.perf_counter() - start
    device = devices.pick_device()
    scoring = {"rerank dev-small": SPLIT_QUERIES["dev-small"] * cross_cfg["rerank_depth"],
               "score_teacher train": SPLIT_QUERIES["train"] * cross_cfg["teacher_depth"] + TRAIN_POSITIVES}
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
        "cross_scoring": cross,
        "projection": {"passages": MSMARCO_PASSAGES, "shards": args.shards, "depth": depth,
                       "retrieve_queries": SPLIT_QUERIES, "scoring_pairs": scoring,
                       "by_workers": project(enc, shard, cross, args.shards, args.workers, SPLIT_QUERIES, scoring)},
        "bench_seconds": round(total, 1),
    }, indent=2))


if __name__ == "__main__":
    main()
