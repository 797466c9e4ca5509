"""Stage entry points: each reads its input artifacts, calls the library and writes its outputs.

The Snakemake scripts in workflow/scripts/ are one call into this module, so every stage is also
reachable from tests and from the `bicross` command line without Snakemake.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pyarrow.parquet as pq

from bicross import devices, evaluate, index, summary
from bicross.data import load_dataset, write_dataset
from bicross.encode import encode_ids
from bicross.models import load_bi_encoder, load_tokenizer
from bicross.schemas import RUN, write_table
from bicross.tokenize import document_text, read_tokens, tokenize_to_parquet

log = logging.getLogger("bicross.pipeline")


def prepare_data(dataset_cfg: dict, outdir: str) -> None:
    write_dataset(load_dataset(dataset_cfg), outdir)


def tokenize(
    model: str, corpus: str, queries: dict[str, str], query_max_length: int, doc_max_length: int,
    corpus_out: str, queries_out: dict[str, str],
) -> None:
    tokenizer = load_tokenizer(model)
    table = pq.read_table(corpus)
    texts = [document_text(t, x) for t, x in zip(table.column("title").to_pylist(),
                                                  table.column("text").to_pylist(), strict=True)]
    tokenize_to_parquet(tokenizer, table.column("docid").to_pylist(), texts, doc_max_length, corpus_out,
                        desc="tokenize corpus")
    for split, path in queries.items():
        table = pq.read_table(path)
        tokenize_to_parquet(tokenizer, table.column("qid").to_pylist(), table.column("text").to_pylist(),
                            query_max_length, queries_out[split], desc=f"tokenize {split} queries")


def shard_rows(n: int, shard: int, shards: int) -> slice:
    """Rows of shard `shard` of `shards`: contiguous, sizes differing by at most one."""
    if not 0 <= shard < shards:
        raise ValueError(f"shard {shard} is outside 0..{shards - 1}")
    return slice(n * shard // shards, n * (shard + 1) // shards)


def encode(
    model: str, tokens: str, out: str, *, pooling: str = "auto", normalize="auto", batch_size: int = 64,
    precision: str = "auto", threads: int | None = None, shard: int = 0, shards: int = 1,
    id_column: str = "docid",
) -> None:
    devices.set_threads(threads)
    device = devices.pick_device()
    dtype = devices.resolve_precision(precision, device)
    n = pq.ParquetFile(tokens).metadata.num_rows
    ids, sequences = read_tokens(tokens, shard_rows(n, shard, shards))
    encoder = load_bi_encoder(model, pooling=pooling, normalize=normalize)
    log.info("encoding %d texts (shard %d/%d) with %s on %s, %s, %s pooling, normalize=%s",
             len(ids), shard + 1, shards, model, device, dtype, encoder.pooling.pooling,
             encoder.pooling.normalize)
    start = time.perf_counter()
    vectors = encode_ids(encoder, sequences, batch_size, device, dtype, desc=f"encode {Path(out).stem}")
    elapsed = time.perf_counter() - start
    log.info("encoded %d texts in %.1f s (%.1f texts/s)", len(ids), elapsed, len(ids) / max(elapsed, 1e-9))
    write_table(index.embeddings_table(ids, vectors, id_column), out)


def retrieve(query_embeddings: str, shards: list[str], depth: int, out: str, threads: int | None = None):
    devices.set_threads(threads)
    qids, queries = index.read_embeddings(query_embeddings)
    start = time.perf_counter()
    scores, docids = index.search_shards(queries, shards, depth)
    log.info("searched %d queries over %d shards, top %d, in %.1f s", len(qids), len(shards), depth,
             time.perf_counter() - start)
    write_table(index.run_table(qids, scores, docids), out, RUN)


def evaluate_run(run: str, qrels: str, out: str, *, iteration: int, encoder: str, split: str,
                 relevance_level: int = 1) -> dict[str, float]:
    metrics = evaluate.evaluate_run(pq.read_table(run), pq.read_table(qrels), relevance_level)
    log.info("iteration %d %s %s: %s", iteration, encoder, split,
             ", ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items())))
    evaluate.write_metrics_json(metrics, out, iteration, encoder, split)
    return metrics


def summarize(metric_files: list[str], out: str) -> None:
    table = summary.write_metrics(metric_files, out)
    log.info("metrics table\n%s", summary.format_table(table))
