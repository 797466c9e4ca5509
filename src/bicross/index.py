"""Inner-product search with faiss, shard by shard, merged into one top-k per query.

Each shard is searched and dropped before the next, so memory holds one shard at a time. The index
of a shard is exact (`flat`: IndexFlatIP, built in memory at search time; on a GPU when faiss-gpu and
a GPU are present) or approximate (`ivf`: IndexIVFFlat, `hnsw`: IndexHNSWFlat, both inner product),
built once per shard by `build_index` and saved, so every split's search reuses it. Approximate
indexes search on the CPU. Embeddings are normalised by default, so inner product is cosine.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from bicross.schemas import RUN, atomic_path, embeddings_schema

log = logging.getLogger("bicross.index")

INDEX_KINDS = ("flat", "ivf", "hnsw")
# which settings shape the built index (a change rebuilds it) and which only the search
_BUILD_KEYS = {"flat": (), "ivf": ("nlist",), "hnsw": ("m", "ef_construction")}
_SEARCH_KEYS = {"flat": (), "ivf": ("nprobe",), "hnsw": ("ef_search",)}


@dataclass(frozen=True)
class IndexSettings:
    """The `retrieve:` section's index choice; the defaults are the config schema's."""

    index: str = "flat"
    nlist: int | None = None  # ivf: lists per shard; None = 4 * sqrt(shard size), at most size / 39
    nprobe: int = 256  # ivf: lists searched per query
    m: int = 32  # hnsw: neighbours per node (faiss `M`)
    ef_construction: int = 200  # hnsw: candidate list while building (faiss `efConstruction`)
    ef_search: int = 256  # hnsw: candidate list while searching (faiss `efSearch`; at least k)

    def __post_init__(self):
        if self.index not in INDEX_KINDS:
            raise ValueError(f"retrieve.index must be one of {INDEX_KINDS}, got {self.index!r}")

    @classmethod
    def from_config(cls, retrieve: dict) -> IndexSettings:
        """From the config's `retrieve:` section ({index, ivf: {...}, hnsw: {...}})."""
        nested = {**(retrieve.get("ivf") or {}), **(retrieve.get("hnsw") or {})}
        return cls(index=retrieve.get("index", "flat"), **nested)

    @classmethod
    def from_params(cls, params: dict | None) -> IndexSettings:
        """From a flat dict as `build_params` / `search_params` return (None: flat)."""
        return cls(**(params or {}))

    @property
    def approximate(self) -> bool:
        return self.index != "flat"

    def build_params(self) -> dict:
        """The settings a built index depends on (a rule's params: a change rebuilds)."""
        values = asdict(self)
        return {"index": self.index, **{k: values[k] for k in _BUILD_KEYS[self.index]}}

    def search_params(self) -> dict:
        values = asdict(self)
        return {"index": self.index, **{k: values[k] for k in _SEARCH_KEYS[self.index]}}

    def lists_for(self, n: int) -> int:
        """IVF lists for a shard of n vectors: the configured number, or 4 * sqrt(n) with >= 39 per list."""
        nlist = self.nlist if self.nlist is not None else min(round(4 * math.sqrt(n)), n // 39)
        return max(1, min(nlist, n))


def set_threads(threads: int | None) -> int:
    """Give faiss the rule's `threads` (Snakemake's budget), not every core of the node; the stages that
    only search (retrieve, build_index) call this one and never import torch (bicross.devices)."""
    threads = int(threads or os.cpu_count() or 1)
    faiss.omp_set_num_threads(threads)
    return threads


def embeddings_table(ids: Sequence[str], vectors: np.ndarray, id_column: str = "docid") -> pa.Table:
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    column = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), vectors.shape[1])
    return pa.table({id_column: pa.array(list(ids), pa.string()), "embedding": column},
                    schema=embeddings_schema(vectors.shape[1], id_column))


def read_embeddings(path: str | os.PathLike) -> tuple[list[str], np.ndarray]:
    """Read an embeddings file into (ids, float32 matrix) without a per-row Python loop."""
    return embeddings_of(pq.read_table(path))


def embeddings_of(table: pa.Table) -> tuple[list[str], np.ndarray]:
    """(ids, float32 matrix) of an embeddings table."""
    column = table.column("embedding").combine_chunks()
    flat = column.flatten().to_numpy(zero_copy_only=False)
    ids = table.column(0).to_pylist()  # docid for documents, qid for queries
    return ids, flat.reshape(-1, column.type.list_size).astype(np.float32, copy=False)


def read_ids(path: str | os.PathLike) -> list[str]:
    """Only the id column of an embeddings file."""
    table = pq.read_table(path, columns=[pq.read_schema(path).names[0]])
    return table.column(0).to_pylist()


def _flat_index(dim: int) -> faiss.Index:
    index = faiss.IndexFlatIP(dim)
    if hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0:
        index = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, index)
    return index


def build_index(vectors: np.ndarray, settings: IndexSettings) -> faiss.Index:
    """A CPU index over `vectors` (inner product): flat, or IVF (trained here) or HNSW."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n, dim = vectors.shape
    if settings.index == "flat" or n == 0:
        index = faiss.IndexFlatIP(dim)
    elif settings.index == "ivf":
        nlist = settings.lists_for(n)
        index = faiss.index_factory(dim, f"IVF{nlist},Flat", faiss.METRIC_INNER_PRODUCT)
        index.train(vectors)
    else:
        index = faiss.index_factory(dim, f"HNSW{settings.m},Flat", faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = settings.ef_construction
    index.add(vectors)
    return index


def configure_search(index: faiss.Index, settings: IndexSettings) -> faiss.Index:
    """Apply the search-time settings (nprobe, efSearch) to a built or loaded index."""
    if isinstance(index, faiss.IndexIVF):
        index.nprobe = min(settings.nprobe, index.nlist)
    elif isinstance(index, faiss.IndexHNSW):
        index.hnsw.efSearch = settings.ef_search
    return index


def write_index(index: faiss.Index, path: str | os.PathLike) -> None:
    """Save an index atomically (a crash never leaves a half-written file under `path`)."""
    tmp = atomic_path(path)
    try:
        faiss.write_index(index, str(tmp))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_index(path: str | os.PathLike) -> faiss.Index:
    return faiss.read_index(str(path))


def merge_topk(
    scores_a: np.ndarray, ids_a: np.ndarray, scores_b: np.ndarray, ids_b: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Keep the best k of two (n, *) candidate lists per row, ordered by score descending."""
    scores = np.concatenate([scores_a, scores_b], axis=1)
    ids = np.concatenate([ids_a, ids_b], axis=1)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, 1), np.take_along_axis(ids, order, 1)


def search_shards(
    queries: np.ndarray,
    shard_paths: Sequence[str | os.PathLike],
    depth: int,
    settings: IndexSettings | None = None,
    index_paths: Sequence[str | os.PathLike] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-`depth` documents per query over all shards: (scores float32 (n, k), docids object (n, k)).

    `index_paths` (one per shard, from `build_index`) are searched instead of exact indexes built from
    the embeddings; the embeddings files then give only the docids. An approximate index may find fewer
    than `depth` documents for a query: the missing places have score -inf and docid None.
    """
    settings = settings or IndexSettings()
    if index_paths is not None and len(index_paths) != len(shard_paths):
        raise ValueError(f"{len(index_paths)} index files for {len(shard_paths)} shards")
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    n = len(queries)
    best_scores = np.full((n, 0), -np.inf, dtype=np.float32)
    best_ids = np.empty((n, 0), dtype=object)
    for s, path in enumerate(tqdm(shard_paths, desc="search shards", unit="shard")):
        if index_paths is not None:
            docids = read_ids(path)
            if len(docids) == 0:
                continue
            index = configure_search(read_index(index_paths[s]), settings)
            if index.ntotal != len(docids):
                raise ValueError(f"{index_paths[s]} holds {index.ntotal} vectors, {path} {len(docids)} docids")
        else:
            docids, vectors = read_embeddings(path)
            if len(docids) == 0:
                continue
            if settings.approximate:
                index = configure_search(build_index(vectors, settings), settings)
            else:
                index = _flat_index(vectors.shape[1])
                index.add(vectors)
        scores, idx = index.search(queries, min(depth, len(docids)))
        found = idx >= 0
        scores = np.where(found, scores, -np.inf).astype(np.float32)
        shard_ids = np.where(found, np.asarray(docids, dtype=object)[np.maximum(idx, 0)], None)
        best_scores, best_ids = merge_topk(best_scores, best_ids, scores, shard_ids, depth)
    return best_scores, best_ids


def run_table(qids: Sequence[str], scores: np.ndarray, docids: np.ndarray) -> pa.Table:
    """A RUN table (qid, docid, rank from 1, score) from per-query top-k matrices.

    Places an approximate search left empty (docid None, at the end of a row) are dropped.
    """
    n, k = scores.shape
    found = np.not_equal(docids.reshape(-1), None).astype(bool)
    return pa.table(
        {
            "qid": pa.array(np.repeat(np.asarray(qids, dtype=object), k)[found], pa.string()),
            "docid": pa.array(docids.reshape(-1)[found], pa.string()),
            "rank": pa.array(np.tile(np.arange(1, k + 1, dtype=np.int32), n)[found]),
            "score": pa.array(scores.reshape(-1).astype(np.float32)[found]),
        },
        schema=RUN,
    )
