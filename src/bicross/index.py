"""Exact inner-product search with faiss, shard by shard, merged into one top-k per query.

Each shard is loaded, indexed (IndexFlatIP; on a GPU when faiss-gpu and a GPU are present),
searched and dropped before the next, so memory holds one shard at a time.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from bicross.schemas import RUN, embeddings_schema

log = logging.getLogger("bicross.index")


def embeddings_table(ids: Sequence[str], vectors: np.ndarray, id_column: str = "docid") -> pa.Table:
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    column = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), vectors.shape[1])
    return pa.table({id_column: pa.array(list(ids), pa.string()), "embedding": column},
                    schema=embeddings_schema(vectors.shape[1], id_column))


def read_embeddings(path: str | os.PathLike) -> tuple[list[str], np.ndarray]:
    """Read an embeddings file into (ids, float32 matrix) without a per-row Python loop."""
    table = pq.read_table(path)
    column = table.column("embedding").combine_chunks()
    flat = column.flatten().to_numpy(zero_copy_only=False)
    ids = table.column(0).to_pylist()  # docid for documents, qid for queries
    return ids, flat.reshape(-1, column.type.list_size).astype(np.float32, copy=False)


def _flat_index(dim: int) -> faiss.Index:
    index = faiss.IndexFlatIP(dim)
    if hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0:
        index = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, index)
    return index


def merge_topk(
    scores_a: np.ndarray, ids_a: np.ndarray, scores_b: np.ndarray, ids_b: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Keep the best k of two (n, *) candidate lists per row, ordered by score descending."""
    scores = np.concatenate([scores_a, scores_b], axis=1)
    ids = np.concatenate([ids_a, ids_b], axis=1)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, 1), np.take_along_axis(ids, order, 1)


def search_shards(
    queries: np.ndarray, shard_paths: Sequence[str | os.PathLike], depth: int
) -> tuple[np.ndarray, np.ndarray]:
    """Top-`depth` documents per query over all shards: (scores float32 (n, k), docids object (n, k))."""
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    n = len(queries)
    best_scores = np.full((n, 0), -np.inf, dtype=np.float32)
    best_ids = np.empty((n, 0), dtype=object)
    for path in tqdm(shard_paths, desc="search shards", unit="shard"):
        docids, vectors = read_embeddings(path)
        if len(docids) == 0:
            continue
        index = _flat_index(vectors.shape[1])
        index.add(vectors)
        scores, idx = index.search(queries, min(depth, len(docids)))
        shard_ids = np.asarray(docids, dtype=object)[idx]
        best_scores, best_ids = merge_topk(best_scores, best_ids, scores, shard_ids, depth)
    return best_scores, best_ids


def run_table(qids: Sequence[str], scores: np.ndarray, docids: np.ndarray) -> pa.Table:
    """A RUN table (qid, docid, rank from 1, score) from per-query top-k matrices."""
    n, k = scores.shape
    return pa.table(
        {
            "qid": pa.array(np.repeat(np.asarray(qids, dtype=object), k), pa.string()),
            "docid": pa.array(docids.reshape(-1), pa.string()),
            "rank": pa.array(np.tile(np.arange(1, k + 1, dtype=np.int32), n)),
            "score": pa.array(scores.reshape(-1).astype(np.float32)),
        },
        schema=RUN,
    )
