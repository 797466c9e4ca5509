"""Stage entry points: each reads its input artifacts, calls the library and writes its outputs.

The Snakemake scripts in workflow/scripts/ are one call into this module, so every stage is also
reachable from tests and from the `bicross` command line without Snakemake.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pyarrow.parquet as pq

from bicross import evaluate, index, summary
from bicross.data import carve, hold_out, load_corpus, load_dataset, load_split, write_dataset
from bicross.models import load_bi_encoder, load_tokenizer
from bicross.parts import group_rows, row_blocks, shard_rows
from bicross.schemas import CHANGES, CORPUS, QRELS, QUERIES, RUN, AtomicParquetWriter, write_table
from bicross.tokenize import document_text, read_tokens, tokenize_to_parquet

log = logging.getLogger("bicross.pipeline")

# torch (bicross.devices, bicross.encode) is imported by the stages that use it only: a data, search or
# evaluation job starts 2 s sooner without it


def prepare_data(dataset_cfg: dict, outdir: str, holdout: dict | None = None) -> None:
    """Load and write the whole dataset; `holdout` ({split, name, size, seed}) moves validation queries out
    of the train split first (bicross.data.hold_out). The workflow prepares the corpus and each split
    apart (prepare_corpus, prepare_split)."""
    ds = load_dataset(dataset_cfg)
    if holdout:
        count = hold_out(ds, holdout["split"], holdout["name"], holdout["size"], holdout["seed"])
        log.info("held out %d of the %s queries as split %r (validation: never trained on)", count,
                 holdout["split"], holdout["name"])
    write_dataset(ds, outdir)


def prepare_corpus(corpus_spec: dict, out: str) -> None:
    """Load the corpus alone (bicross.data.corpus_spec: no split's files are read) and write it."""
    corpus = load_corpus(corpus_spec)
    log.info("corpus: %d documents", corpus.num_rows)
    write_table(corpus, out, CORPUS)


def prepare_split(job: dict, split: str, corpus: str, queries_out: str, qrels_out: str) -> None:
    """Write one split's queries and qrels (`job`: bicross.data.split_job), its qrels checked against the
    docids of the prepared `corpus`. With `job["holdout"]`, `split` is the train split or the held-out
    validation split, carved from the train split's queries (bicross.data.carve): the same carving in
    both jobs."""
    spec = job["dataset"]
    (source,) = spec["splits"]
    docids = pq.read_table(corpus, columns=["docid"]).column("docid").combine_chunks()
    queries, qrels = load_split(spec, source, docids)
    if holdout := job.get("holdout"):
        kept, held, count = carve(queries, qrels, source, holdout["size"], holdout["seed"])
        log.info("held out %d of the %s queries as split %r (validation: never trained on)", count, source,
                 holdout["name"])
        queries, qrels = held if split == holdout["name"] else kept
    elif split != source:
        raise ValueError(f"prepare_split: split {split!r} is read from split {source!r} with no holdout")
    log.info("split %s: %d queries, %d qrels", split, queries.num_rows, qrels.num_rows)
    write_table(queries, queries_out, QUERIES)
    write_table(qrels, qrels_out, QRELS)


def tokenize_corpus(model: str, corpus: str, max_length: int, out: str) -> None:
    """Token ids of every document (title and text, bicross.tokenize.document_text)."""
    tokenizer = load_tokenizer(model)
    table = pq.read_table(corpus)
    texts = [document_text(t, x) for t, x in zip(table.column("title").to_pylist(),
                                                  table.column("text").to_pylist(), strict=True)]
    tokenize_to_parquet(tokenizer, table.column("docid").to_pylist(), texts, max_length, out,
                        desc="tokenize corpus")


def tokenize_queries(model: str, queries: str, max_length: int, out: str, split: str = "") -> None:
    """Token ids of one split's queries."""
    tokenizer = load_tokenizer(model)
    table = pq.read_table(queries)
    tokenize_to_parquet(tokenizer, table.column("qid").to_pylist(), table.column("text").to_pylist(),
                        max_length, out, desc=f"tokenize {split} queries" if split else "tokenize queries")


def tokenize(
    model: str, corpus: str, queries: dict[str, str], query_max_length: int, doc_max_length: int,
    corpus_out: str, queries_out: dict[str, str],
) -> None:
    """The corpus and every split's queries at once (the workflow runs tokenize_corpus and
    tokenize_queries as jobs of their own)."""
    tokenize_corpus(model, corpus, doc_max_length, corpus_out)
    for split, path in queries.items():
        tokenize_queries(model, path, query_max_length, queries_out[split], split)


def encode(
    model: str, tokens: str, out: str, *, pooling: str = "auto", normalize="auto", batch_size: int = 64,
    precision: str = "auto", threads: int | None = None, shard: int = 0, shards: int = 1,
    id_column: str = "docid",
) -> None:
    from bicross import devices
    from bicross.encode import encode_ids

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


def build_index(embeddings: str, out: str, settings: dict, threads: int | None = None) -> None:
    """One shard's approximate index (`settings`: IndexSettings.build_params()), saved for every search."""
    index.set_threads(threads)
    chosen = index.IndexSettings.from_params(settings)
    _, vectors = index.read_embeddings(embeddings)
    start = time.perf_counter()
    built = index.build_index(vectors, chosen)
    detail = f", {built.nlist} lists" if chosen.index == "ivf" and len(vectors) else ""
    log.info("built a %s index (%s%s) over %d vectors in %.1f s", chosen.index, chosen.build_params(), detail,
             len(vectors), time.perf_counter() - start)
    index.write_index(built, out)


# queries searched at once by one retrieve job: its memory holds one block's candidates (block x depth),
# and each corpus shard is read once per block (more queries than this: raise retrieve.query_shards)
RETRIEVE_BLOCK = 32768


def retrieve(query_embeddings: str, shards: list[str], depth: int, out: str, threads: int | None = None, *,
             indexes: list[str] | None = None, search: dict | None = None, part: int = 0, parts: int = 1,
             block: int = RETRIEVE_BLOCK):
    """Top-`depth` run over the corpus shards of part `part` of `parts` of the queries (bicross.parts):
    exact, or through the shards' saved indexes (`indexes`) with the search settings `search`
    (IndexSettings.search_params()). Written to Parquet `block` queries at a time, so memory does not
    grow with the number of queries."""
    index.set_threads(threads)
    settings = index.IndexSettings.from_params(search)
    rows = shard_rows(pq.ParquetFile(query_embeddings).metadata.num_rows, part, parts)
    start, searched, blocks = time.perf_counter(), 0, 0
    with AtomicParquetWriter(out, RUN) as writer:
        for table in row_blocks(query_embeddings, rows, block):
            qids, queries = index.embeddings_of(table)
            scores, docids = index.search_shards(queries, shards, depth, settings, indexes or None)
            writer.write(index.run_table(qids, scores, docids))
            searched, blocks = searched + len(qids), blocks + 1
    log.info("searched %d queries (part %d/%d, %d block(s)) over %d shards (%s), top %d, in %.1f s", searched,
             part + 1, parts, blocks, len(shards), settings.search_params(), depth, time.perf_counter() - start)


def mine(run: str, qrels: str, corpus: str, out: str, *, iteration: int, denoise: dict | None = None,
         teacher: str | None = None, record: str | None = None, **mining) -> dict[str, int]:
    """Iteration k's hard negatives (bicross.mining), denoised when `denoise` (mine.filter_teacher,
    max_score, relative_margin) has a `teacher` file this iteration; `record`: what the filter did, as
    JSON for the summary and report (bicross.summary.loop_checks)."""
    import json

    from bicross.mining import MiningFilter, mine_negatives
    from bicross.schemas import write_text_atomic

    kind = denoise["filter_teacher"] if denoise else "none"
    active = None
    if denoise and teacher:
        active = MiningFilter(teacher, denoise["max_score"], denoise["relative_margin"], sigmoid=kind == "cross")
    elif denoise:
        log.info("mining filter: none in iteration %d (no cross-encoder before it)", iteration)
    counts = mine_negatives(run, qrels, corpus, out, denoise=active, **mining)
    if record:
        names = {"cross": "cross-encoder", "bi": "bi-encoder"}
        summary_ = {"iteration": iteration, "teacher": f"{names[kind]} {iteration - 1}" if active else None,
                    "scale": ("sigmoid(logit)" if kind == "cross" else "run score") if active else None,
                    "max_score": denoise["max_score"], "relative_margin": denoise["relative_margin"], **counts}
        write_text_atomic(json.dumps(summary_, indent=2, sort_keys=True) + "\n", record)
    return counts


def evaluate_run(run: str, qrels: str, out: str, *, iteration: int, encoder: str, split: str,
                 relevance_level: int = 1, values_out: str | None = None) -> dict[str, float]:
    """The metrics JSON of a run, and (`values_out`) each judged query's values for the paired tests."""
    qids, values = evaluate.per_query_values(pq.read_table(run), pq.read_table(qrels), relevance_level)
    metrics = evaluate.means(qids, values)
    log.info("iteration %d %s %s: %s", iteration, encoder, split,
             ", ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items())))
    evaluate.write_metrics_json(metrics, out, iteration, encoder, split)
    if values_out:
        evaluate.write_query_values(qids, values, values_out)
    return metrics


def summarize(metric_files: list[str], out: str, changes_out: str | None = None, *, resamples: int = 10_000,
              seed: int = 42) -> None:
    """metrics.parquet from the metrics JSONs; `changes_out`: the paired test of every change (CHANGES)."""
    table = summary.write_metrics(metric_files, out)
    changes = None
    if changes_out:
        start = time.perf_counter()
        changes = summary.paired_changes(table, summary.values_files(metric_files), resamples, seed)
        write_table(changes, changes_out, CHANGES)
        log.info("%d paired tests (%d resamples each) in %.1f s", changes.num_rows, resamples,
                 time.perf_counter() - start)
    log.info("metrics table\n%s", summary.format_table(table, changes))


def _scoring_setup(model: str, precision: str, threads: int | None):
    from bicross import devices
    from bicross.score import CrossEncoder

    devices.set_threads(threads)
    device = devices.pick_device()
    return CrossEncoder(model), device, devices.resolve_precision(precision, device)


def rerank(
    model: str, run: str, query_tokens: str, corpus_tokens: str, out: str, *, depth: int, max_length: int,
    batch_size: int = 64, precision: str = "auto", threads: int | None = None, part: int = 0, parts: int = 1,
) -> None:
    """Cross-encoder scores for each query's top-`depth` candidates; a new run ordered by them. Part
    `part` of `parts` (bicross.parts.group_rows) scores its share of the queries."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from bicross.tokenize import TokenStore

    cross, device, dtype = _scoring_setup(model, precision, threads)
    table = pq.read_table(run)
    table = group_rows(table.filter(pc.less_equal(table.column("rank"), depth)), "qid", part, parts)
    qids, docids = table.column("qid").to_pylist(), table.column("docid").to_pylist()
    start = time.perf_counter()
    scores = cross.score(TokenStore(query_tokens).get(qids), TokenStore(corpus_tokens).get(docids),
                         max_length, batch_size, device, dtype, desc=f"rerank {Path(run).stem}")
    log.info("reranked %d pairs in %.1f s (%.1f pairs/s)", len(scores), time.perf_counter() - start,
             len(scores) / max(time.perf_counter() - start, 1e-9))
    scored = pa.table({"qid": qids, "docid": docids, "score": scores.astype(np.float32)})
    scored = scored.sort_by([("qid", "ascending"), ("score", "descending"), ("docid", "ascending")])
    ranks = _ranks_within(scored.column("qid").to_numpy(zero_copy_only=False))
    write_table(scored.append_column("rank", pa.array(ranks, pa.int32())), out, RUN)


def _ranks_within(groups) -> list[int]:
    """1, 2, ... restarting at each new value of a sorted group column."""
    ranks, previous, r = [], object(), 0
    for g in groups:
        r = r + 1 if g == previous else 1
        previous = g
        ranks.append(r)
    return ranks


def score_teacher(
    model: str, run: str, qrels: str, query_tokens: str, corpus_tokens: str, out: str, *, depth: int,
    max_length: int, batch_size: int = 64, precision: str = "auto", threads: int | None = None, part: int = 0,
    parts: int = 1,
) -> None:
    """Teacher scores for train queries: the top-`depth` candidates AND every qrels positive; part `part`
    of `parts` (bicross.parts.group_rows) scores its share of the queries."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from bicross.schemas import TEACHER
    from bicross.tokenize import TokenStore

    cross, device, dtype = _scoring_setup(model, precision, threads)
    judged = pq.read_table(qrels)
    positives = judged.filter(pc.greater(judged.column("relevance"), 0)).select(["qid", "docid"])
    trained = pc.unique(positives.column("qid"))  # queries without a positive train nothing
    candidates = pq.read_table(run, columns=["qid", "docid", "rank"])
    candidates = candidates.filter(pc.and_(pc.less_equal(candidates.column("rank"), depth),
                                           pc.is_in(candidates.column("qid"), value_set=trained)))
    pairs = pa.concat_tables([candidates.select(["qid", "docid"]), positives]).group_by(
        ["qid", "docid"]).aggregate([]).sort_by([("qid", "ascending"), ("docid", "ascending")])
    pairs = group_rows(pairs, "qid", part, parts)
    qids, docids = pairs.column("qid").to_pylist(), pairs.column("docid").to_pylist()
    start = time.perf_counter()
    scores = cross.score(TokenStore(query_tokens).get(qids), TokenStore(corpus_tokens).get(docids),
                         max_length, batch_size, device, dtype, desc="teacher scores")
    log.info("teacher scores for %d pairs (part %d/%d of %d queries; top %d + every positive) in %.1f s",
             len(scores), part + 1, parts, len(trained), depth, time.perf_counter() - start)
    write_table(pa.table({"qid": qids, "docid": docids, "score": scores}), out, TEACHER)
