"""Exports to the formats other tools read: TREC run files (and, later, FlagEmbedding JSONL)."""

from __future__ import annotations

import pyarrow.parquet as pq

from bicross.schemas import write_text_atomic


def run_to_trec(run_path, out_path, tag: str = "bicross") -> int:
    """`qid Q0 docid rank score tag` per line, in rank order; returns the line count."""
    run = pq.read_table(run_path).sort_by([("qid", "ascending"), ("rank", "ascending")])
    lines = [f"{q} Q0 {d} {r} {s:.6f} {tag}" for q, d, r, s in zip(
        *(run.column(c).to_pylist() for c in ("qid", "docid", "rank", "score")), strict=True)]
    write_text_atomic("\n".join(lines) + "\n", out_path)
    return len(lines)


def to_flagembedding(negatives_path, queries_path, corpus_path, out_path, teacher_path=None) -> int:
    """FlagEmbedding training JSONL: `query`, `pos`, `neg` (texts) and, with teacher scores,
    `pos_scores` / `neg_scores` aligned with them. Negatives are the mined ones; with a teacher
    file, a negative the teacher did not score is left out so every text keeps its score."""
    import json

    from bicross.tokenize import document_text

    queries = dict(zip(*(pq.read_table(queries_path).column(c).to_pylist() for c in ("qid", "text")),
                       strict=True))
    corpus = pq.read_table(corpus_path)
    docs = {d: document_text(t, x) for d, t, x in zip(
        *(corpus.column(c).to_pylist() for c in ("docid", "title", "text")), strict=True)}
    scores = {}
    if teacher_path is not None:
        teacher = pq.read_table(teacher_path)
        scores = {(q, d): s for q, d, s in zip(
            *(teacher.column(c).to_pylist() for c in ("qid", "docid", "score")), strict=True)}
    lines = []
    for row in pq.read_table(negatives_path).to_pylist():
        q, pos, neg = row["qid"], row["positives"], row["negatives"]
        record = {"query": queries[q]}
        if scores:
            pos = [d for d in pos if (q, d) in scores]
            neg = [d for d in neg if (q, d) in scores]
        record["pos"] = [docs[d] for d in pos]
        record["neg"] = [docs[d] for d in neg]
        if scores:
            record["pos_scores"] = [round(float(scores[(q, d)]), 6) for d in pos]
            record["neg_scores"] = [round(float(scores[(q, d)]), 6) for d in neg]
        lines.append(json.dumps(record, ensure_ascii=False))
    write_text_atomic("\n".join(lines) + "\n", out_path)
    return len(lines)
