"""Hard-negative mining: for each train query, sample negatives from bi-encoder k-1's run.

Reads a RUN (qid, docid, rank, score), the train QRELS and the corpus' docid column, and writes
`iter<k>/negatives.parquet` (NEGATIVES: qid, positives: list<string>, negatives: list<string>).

- positives: every qrels document of the query with relevance > 0, sorted, without duplicates.
  Queries without any positive are left out (and counted).
- negatives: `negatives_per_query` documents sampled without replacement from the run's candidates
  with rank in [rank_start, rank_end] that are not a positive of the query (duplicates in the run
  count once). They are written in run order (best rank first). When the window holds too few, all of
  them are taken and random corpus documents (not a positive, not already chosen) fill the rest; a
  query of the qrels that is missing from the run gets only random corpus documents. Only a corpus too
  small to fill the list leaves a query with fewer (counted as "short").

- denoising (`MiningFilter`, off by default): before sampling, a window candidate is dropped when a
  teacher scores it above `max_score`, or above `(1 - relative_margin)` times the query's positive
  score (its best-scored positive), as RocketQA's denoised negatives and sentence-transformers'
  `mine_hard_negatives` (`max_score`, `relative_margin`) do: such a candidate is more likely an
  unlabelled positive than a negative. The teacher is a TEACHER-like file (qid, docid, score): the
  previous cross-encoder's scores of the window candidates and positives (compared as sigmoid(logit),
  in (0, 1), so one threshold means the same whatever the logit scale), or bi-encoder k-1's run itself
  (its inner products, cosines for a normalising model). A query whose positives have no teacher score
  (bi: ranked below the run's depth) is filtered by `max_score` only (counted). The drops shrink the
  window, so more queries are topped up.

Output order: the queries in the order they first appear in the run, then the qrels queries missing
from the run, sorted by qid. So the file follows the run (which follows the query file), needs no
global sort (the run is streamed), and is stable.

Determinism: each query draws from its own generator,
`np.random.default_rng([seed, blake2b-64(qid)])`, so a query's negatives depend only on the seed, its
qid, its candidates, its positives and the corpus, not on which other queries exist or how they
are chunked. Rows are written in row groups of a fixed number of queries (`ROW_GROUP_QUERIES`),
built from plain lists, so the same inputs and seed give a byte-identical file whatever
`chunk_queries` is.

Memory: the run is streamed batch by batch and processed `chunk_queries` queries at a time; what
stays in memory is the corpus docid column (an Arrow array plus a sorted uint64 hash per docid, used to
check that every candidate is a corpus document) and the qrels positives as a dict.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bicross.errors import InputError
from bicross.schemas import NEGATIVES, AtomicParquetWriter

log = logging.getLogger("bicross.mining")

ROW_GROUP_QUERIES = 8192  # output rows per Parquet row group; independent of chunk_queries on purpose
RUN_BATCH_ROWS = 65_536  # rows per batch read from the run
_DONE = object()  # marks a qrels query once its rows in the run have been seen


def query_rng(seed: int, qid: str) -> np.random.Generator:
    """The generator a query samples from: a function of (seed, qid) only."""
    digest = hashlib.blake2b(qid.encode("utf-8"), digest_size=8).digest()
    return np.random.default_rng([seed, int.from_bytes(digest, "little")])


def _hash(values: np.ndarray) -> np.ndarray:
    """Stable 64-bit hashes of an object array of strings (pandas' siphash, fixed key)."""
    return pd.util.hash_array(values, categorize=False)


def _require_columns(path, names: list[str], required: list[str]) -> None:
    missing = [c for c in required if c not in names]
    if missing:
        raise InputError(path, None, f"columns {', '.join(required)}", got=f"columns {', '.join(names)}")


class _Corpus:
    """The corpus docids as one Arrow string array, with sorted hashes for membership tests."""

    def __init__(self, path: str | os.PathLike):
        names = pq.ParquetFile(path).schema_arrow.names
        _require_columns(path, names, ["docid"])
        column = pq.read_table(path, columns=["docid"]).column("docid").cast(pa.string())
        self.docids: pa.StringArray = column.combine_chunks()
        if self.docids.null_count:
            raise InputError(path, None, "a docid on every row", got=f"{self.docids.null_count} null docids")
        hashes = np.empty(len(self.docids), dtype=np.uint64)
        step = 1 << 16
        for start in range(0, len(self.docids), step):  # in slices: few Python strings at a time
            piece = self.docids.slice(start, step).to_numpy(zero_copy_only=False)
            hashes[start:start + len(piece)] = _hash(piece)
        hashes.sort()
        self.hashes = hashes

    def __len__(self) -> int:
        return len(self.docids)

    def unknown(self, docids: list[str]) -> list[str]:
        """The docids (in order, repeats kept) that are not corpus documents."""
        if not docids or len(self.hashes) == 0:
            return list(docids)
        unknown: list[str] = []
        step = 1 << 16  # in slices: hashing makes a temporary UTF-8 copy of each string
        for start in range(0, len(docids), step):
            piece = docids[start:start + step]
            hashes = _hash(np.array(piece, dtype=object))
            where = np.minimum(np.searchsorted(self.hashes, hashes), len(self.hashes) - 1)
            unknown += [piece[i] for i in np.flatnonzero(self.hashes[where] != hashes).tolist()]
        return unknown

    def sample(self, rng: np.random.Generator, exclude: set[str], need: int) -> list[str]:
        """Up to `need` distinct random corpus docids not in `exclude` (which is extended with them)."""
        n = len(self.docids)
        picked: list[str] = []
        if need <= 0 or n == 0:
            return picked
        tried: set[int] = set()
        # Rejection sampling: cheap when the corpus is much larger than what is excluded.
        for _ in range(8):
            draw = rng.integers(0, n, size=2 * (need - len(picked)) + 8)
            for index, docid in zip(draw.tolist(), self.docids.take(pa.array(draw)).to_pylist(), strict=True):
                if index in tried:
                    continue
                tried.add(index)
                if docid in exclude:
                    continue
                exclude.add(docid)
                picked.append(docid)
                if len(picked) == need:
                    return picked
            if len(tried) >= n:
                break
        # A tiny corpus (or one mostly excluded): walk the rest of a permutation until filled.
        untried = np.ones(n, dtype=bool)
        untried[np.fromiter(tried, dtype=np.int64, count=len(tried))] = False
        rest = rng.permutation(np.flatnonzero(untried))
        for docid in self.docids.take(pa.array(rest, pa.int64())).to_pylist():
            if docid in exclude:
                continue
            exclude.add(docid)
            picked.append(docid)
            if len(picked) == need:
                break
        return picked


def _read_positives(path: str | os.PathLike) -> tuple[dict[str, object], set[str]]:
    """qid -> sorted tuple of positive docids (relevance > 0), and the qrels queries without one."""
    names = pq.ParquetFile(path).schema_arrow.names
    _require_columns(path, names, ["qid", "docid", "relevance"])
    table = pq.read_table(path, columns=["qid", "docid", "relevance"])
    for name in ("qid", "docid"):
        if table.column(name).null_count:
            raise InputError(path, None, f"a {name} on every row", got=f"{table.column(name).null_count} nulls")
    all_qids = pc.unique(table.column("qid"))
    table = table.filter(pc.greater(table.column("relevance"), 0))
    table = table.take(pc.sort_indices(table, [("qid", "ascending"), ("docid", "ascending")]))
    positives: dict[str, object] = {}
    if table.num_rows:
        qids = table.column("qid").combine_chunks()
        starts = np.concatenate([[0], np.flatnonzero(pc.not_equal(qids[1:], qids[:-1])
                                                     .to_numpy(zero_copy_only=False)) + 1])
        ends = np.append(starts[1:], table.num_rows).tolist()
        docids = table.column("docid").to_pylist()
        for qid, start, end in zip(qids.take(pa.array(starts)).to_pylist(), starts.tolist(), ends,
                                   strict=True):
            positives[qid] = tuple(dict.fromkeys(docids[start:end]))  # sorted already; drop repeats
    without: set[str] = set()
    if len(all_qids) > len(positives):
        without = {qid for qid in all_qids.to_pylist() if qid not in positives}
    return positives, without


def _batches(file: pq.ParquetFile, columns: list[str]) -> Iterator[pa.RecordBatch]:
    """The file's record batches, one row group at a time.

    One `iter_batches` over a whole file keeps Arrow memory growing until the end (pyarrow 26 here:
    +~120 MiB over a 20M-row run, compare apache/arrow#39808); a reader per row group stays flat.
    """
    for group in range(file.num_row_groups):
        yield from file.iter_batches(batch_size=RUN_BATCH_ROWS, columns=columns, row_groups=[group])


def _run_queries(run_path, rank_start: int, rank_end: int) -> Iterator[tuple[str, list[str]]]:
    """(qid, candidate docids with rank in the window, in run order) per query, streaming the run.

    A query's rows are contiguous in a run; one that continues into the next batch is carried over.
    """
    file = pq.ParquetFile(run_path)
    _require_columns(run_path, file.schema_arrow.names, ["qid", "docid", "rank"])
    open_qid: str | None = None
    open_docs: list[str] = []
    for batch in _batches(file, ["qid", "docid", "rank"]):
        n = batch.num_rows
        if n == 0:
            continue
        qids = batch.column("qid")
        if qids.null_count:
            raise InputError(run_path, None, "a qid on every row", got=f"{qids.null_count} null qids")
        rank = batch.column("rank").to_numpy(zero_copy_only=False)
        window = (rank >= rank_start) & (rank <= rank_end)
        docid_column = batch.column("docid").filter(pa.array(window))
        if docid_column.null_count:
            raise InputError(run_path, None, "a docid on every row", got=f"{docid_column.null_count} null docids")
        docids = docid_column.to_pylist()
        change = pc.not_equal(qids[1:], qids[:-1]).to_numpy(zero_copy_only=False) if n > 1 else []
        starts = np.concatenate([[0], np.flatnonzero(change) + 1]).astype(np.int64)
        ends = np.append(starts[1:], n)
        in_window = np.concatenate([[0], np.cumsum(window)])
        for qid, a, b in zip(qids.take(pa.array(starts)).to_pylist(), in_window[starts].tolist(),
                             in_window[ends].tolist(), strict=True):
            if qid == open_qid:
                open_docs.extend(docids[a:b])
                continue
            if open_qid is not None:
                yield open_qid, open_docs
            open_qid, open_docs = qid, docids[a:b]
    if open_qid is not None:
        yield open_qid, open_docs


@dataclass(frozen=True)
class MiningFilter:
    """Denoised mining: the teacher's scores (`path`: qid, docid, score; `sigmoid` for logits) and the two
    rules; a None rule is off."""

    path: str | os.PathLike
    max_score: float | None = None
    relative_margin: float | None = None
    sigmoid: bool = False

    def __post_init__(self):
        if self.max_score is None and self.relative_margin is None:
            raise ValueError("a mining filter needs max_score or relative_margin")
        if self.relative_margin is not None and not 0 <= self.relative_margin < 1:
            raise ValueError(f"relative_margin must be in [0, 1), got {self.relative_margin}")


def drop_false_negatives(candidates: list[str], scores: np.ndarray, positive_score: float | None,
                         max_score: float | None, relative_margin: float | None) -> tuple[list[str], int, int]:
    """The candidates (in order) that the filter keeps, and how many it dropped by each rule: above
    `max_score` first, then above `(1 - relative_margin) * positive_score` (only with a positive score)."""
    above_max = scores > max_score if max_score is not None else np.zeros(len(candidates), dtype=bool)
    near = (scores > (1 - relative_margin) * positive_score if relative_margin is not None and positive_score
            is not None else np.zeros(len(candidates), dtype=bool)) & ~above_max
    kept = [d for d, drop in zip(candidates, (above_max | near).tolist(), strict=True) if not drop]
    return kept, int(above_max.sum()), int(near.sum())


def _pair_hash(qids, docids) -> np.ndarray:
    """Stable 64-bit hashes of (qid, docid) pairs (unit separator between them)."""
    joined = pc.binary_join_element_wise(pa.array(qids, pa.string()), pa.array(docids, pa.string()), "\x1f")
    return _hash(joined.to_numpy(zero_copy_only=False))


class _TeacherScores:
    """A teacher's (qid, docid) -> score as sorted pair hashes and float32 scores (no Python strings kept)."""

    def __init__(self, path: str | os.PathLike, sigmoid: bool):
        self.path = path
        file = pq.ParquetFile(path)
        _require_columns(path, file.schema_arrow.names, ["qid", "docid", "score"])
        hashes, scores = [], []
        for batch in _batches(file, ["qid", "docid", "score"]):
            if batch.column("qid").null_count or batch.column("docid").null_count:
                raise InputError(path, None, "a qid and a docid on every row", got="null ids")
            hashes.append(_pair_hash(batch.column("qid"), batch.column("docid")))
            scores.append(batch.column("score").to_numpy(zero_copy_only=False).astype(np.float32))
        hashes = np.concatenate(hashes) if hashes else np.zeros(0, np.uint64)
        values = np.concatenate(scores) if scores else np.zeros(0, np.float32)
        order = np.argsort(hashes, kind="stable")
        self.hashes, self.scores = hashes[order], values[order]
        if sigmoid:
            self.scores = (1 / (1 + np.exp(-self.scores.astype(np.float64)))).astype(np.float32)

    def get(self, qid: str, docids: list[str]) -> np.ndarray:
        """Scores of (qid, docid) for each docid, NaN where the teacher has none."""
        if not docids or len(self.hashes) == 0:
            return np.full(len(docids), np.nan, np.float32)
        hashes = _pair_hash([qid] * len(docids), docids)
        where = np.minimum(np.searchsorted(self.hashes, hashes), len(self.hashes) - 1)
        return np.where(self.hashes[where] == hashes, self.scores[where], np.nan).astype(np.float32)


def mine_negatives(
    run_path: str | os.PathLike,
    qrels_path: str | os.PathLike,
    corpus_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    rank_start: int,
    rank_end: int,
    negatives_per_query: int,
    seed: int,
    chunk_queries: int = 10_000,
    denoise: MiningFilter | None = None,
) -> dict[str, int]:
    """Write NEGATIVES for every qrels query with a positive; return (and log) the counts.

    Counts: `queries` written; `no_positives` queries of the run or qrels left out for lack of a
    positive; `topped_up` run queries whose window held fewer than `negatives_per_query` candidates
    (after the filter); `missing_from_run` qrels queries absent from the run (all-random negatives);
    `short` queries left with fewer negatives than asked (corpus too small); `negatives` written in all.
    With `denoise`: `candidates` in the windows, `dropped_max_score`, `dropped_margin` (the two rules),
    `filtered_queries` with a drop, `topped_up_by_filter` queries topped up only because of the drops,
    `no_positive_score` queries whose positives the teacher did not score.
    """
    if rank_start < 1:
        raise ValueError(f"rank_start must be >= 1 (ranks start at 1), got {rank_start}")
    if rank_end < rank_start:
        raise ValueError(f"rank_end must be >= rank_start, got rank_start={rank_start}, rank_end={rank_end}")
    if negatives_per_query < 0:
        raise ValueError(f"negatives_per_query must be >= 0, got {negatives_per_query}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if chunk_queries < 1:
        raise ValueError(f"chunk_queries must be >= 1, got {chunk_queries}")

    positives, qrels_without_positive = _read_positives(qrels_path)
    corpus = _Corpus(corpus_path)
    counts = {"queries": 0, "no_positives": len(qrels_without_positive), "topped_up": 0, "missing_from_run": 0,
              "short": 0, "negatives": 0}
    teacher = _TeacherScores(denoise.path, denoise.sigmoid) if denoise else None
    if teacher is not None:
        counts.update(candidates=0, dropped_max_score=0, dropped_margin=0, filtered_queries=0,
                      topped_up_by_filter=0, no_positive_score=0)
    out_qids: list[str] = []
    out_pos: list[list[str]] = []
    out_neg: list[list[str]] = []

    def flush(writer: AtomicParquetWriter, final: bool) -> None:
        while len(out_qids) >= ROW_GROUP_QUERIES or (final and out_qids):
            size = min(ROW_GROUP_QUERIES, len(out_qids))
            writer.write(pa.table({"qid": pa.array(out_qids[:size], pa.string()),
                                   "positives": pa.array(out_pos[:size], NEGATIVES.field("positives").type),
                                   "negatives": pa.array(out_neg[:size], NEGATIVES.field("negatives").type)},
                                  schema=NEGATIVES))
            del out_qids[:size], out_pos[:size], out_neg[:size]

    def process(chunk: list[tuple[str, tuple[str, ...], list[str]]], writer: AtomicParquetWriter,
                in_run: bool = True) -> None:
        unknown = corpus.unknown([d for _, _, docs in chunk for d in docs])
        if unknown:
            examples = ", ".join(repr(d) for d in list(dict.fromkeys(unknown))[:5])
            raise InputError(run_path, None, f"docids from the corpus {os.fspath(corpus_path)}",
                             got=f"{len(unknown)} unknown candidate rows in this chunk, e.g. {examples}")
        for qid, pos, docs in chunk:
            rng = query_rng(seed, qid)
            exclude = set(pos)
            candidates = [d for d in dict.fromkeys(docs) if d not in exclude]
            if teacher is not None and candidates:
                kept = _denoised(qid, pos, candidates)
                exclude.update(set(candidates) - set(kept))  # a likely false negative is no random top-up either
                candidates = kept
            if len(candidates) > negatives_per_query:
                chosen = np.sort(rng.choice(len(candidates), size=negatives_per_query, replace=False))
                negatives = [candidates[i] for i in chosen.tolist()]
            else:
                negatives = candidates
                need = negatives_per_query - len(negatives)
                if need:
                    counts["topped_up"] += in_run
                    exclude.update(negatives)
                    negatives = negatives + corpus.sample(rng, exclude, need)
                    if len(negatives) < negatives_per_query:
                        counts["short"] += 1
            out_qids.append(qid)
            out_pos.append(list(pos))
            out_neg.append(negatives)
            counts["negatives"] += len(negatives)
        counts["queries"] += len(chunk)
        flush(writer, final=False)
        log.debug("mined %d queries so far", counts["queries"])

    def _denoised(qid: str, pos: tuple[str, ...], candidates: list[str]) -> list[str]:
        scores = teacher.get(qid, candidates)
        if np.isnan(scores).any():
            missing = [d for d, s in zip(candidates, scores.tolist(), strict=True) if np.isnan(s)]
            raise InputError(denoise.path, None, f"a teacher score for every candidate in ranks {rank_start}-"
                             f"{rank_end} of {os.fspath(run_path)}", got=f"none for query {qid!r}, e.g. {missing[:3]}")
        positive = teacher.get(qid, list(pos))
        positive_score = float(np.nanmax(positive)) if not np.isnan(positive).all() else None
        counts["no_positive_score"] += positive_score is None
        kept, above_max, near = drop_false_negatives(candidates, scores, positive_score, denoise.max_score,
                                                     denoise.relative_margin)
        counts["candidates"] += len(candidates)
        counts["dropped_max_score"] += above_max
        counts["dropped_margin"] += near
        counts["filtered_queries"] += bool(above_max + near)
        counts["topped_up_by_filter"] += len(candidates) >= negatives_per_query > len(kept)
        return kept

    with AtomicParquetWriter(out_path, NEGATIVES) as writer:
        chunk: list[tuple[str, tuple[str, ...], list[str]]] = []
        for qid, docs in _run_queries(run_path, rank_start, rank_end):
            pos = positives.get(qid)
            if pos is _DONE:
                raise InputError(run_path, None, "the rows of each query together (contiguous)",
                                 got=f"query {qid!r} again after other queries")
            if pos is None:
                counts["no_positives"] += qid not in qrels_without_positive
                continue
            positives[qid] = _DONE
            chunk.append((qid, pos, docs))
            if len(chunk) >= chunk_queries:
                process(chunk, writer)
                chunk = []
        if chunk:
            process(chunk, writer)
        missing = sorted(qid for qid, pos in positives.items() if pos is not _DONE)
        counts["missing_from_run"] = len(missing)
        for start in range(0, len(missing), chunk_queries):
            process([(qid, positives[qid], []) for qid in missing[start:start + chunk_queries]], writer,
                    in_run=False)
        flush(writer, final=True)

    log.info(
        "mined negatives for %d queries (%d negatives) from %s into %s: %d topped up with random corpus "
        "documents (too few candidates in ranks %d-%d), %d missing from the run (all random), "
        "%d left out without a positive, %d short of %d negatives (corpus too small)",
        counts["queries"], counts["negatives"], os.fspath(run_path), os.fspath(out_path),
        counts["topped_up"], rank_start, rank_end, counts["missing_from_run"], counts["no_positives"],
        counts["short"], negatives_per_query,
    )
    if teacher is not None:
        log.info(filter_message(counts, denoise))
        dropped = counts["dropped_max_score"] + counts["dropped_margin"]
        if counts["candidates"] and dropped > counts["candidates"] / 2:  # a teacher that separates nothing
            log.warning("the mining filter dropped %d of %d window candidates: the teacher may not separate "
                        "positives from candidates (raise max_score or lower relative_margin)", dropped,
                        counts["candidates"])
    return counts


def filter_message(counts: dict, denoise: MiningFilter | None = None, label: str = "mining filter") -> str:
    """One line on what the filter dropped (a MiningFilter's rules, or those recorded in `counts`)."""
    max_score = denoise.max_score if denoise else counts.get("max_score")
    margin = denoise.relative_margin if denoise else counts.get("relative_margin")
    return (f"{label}: dropped {counts['dropped_max_score'] + counts['dropped_margin']} of {counts['candidates']} "
            f"window candidates ({counts['dropped_max_score']} above max_score {max_score}, "
            f"{counts['dropped_margin']} above (1 - {margin}) x the positive's score) in "
            f"{counts['filtered_queries']} queries; {counts['topped_up']} queries topped up "
            f"({counts['topped_up_by_filter']} only because of the drops), {counts['no_positive_score']} without "
            f"a teacher score for their positive")
